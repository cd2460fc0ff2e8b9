//! `basicauth:REALM,USER:PASSWORD` and `basicauth:REALM,HTPASSWD-FILE`:
//! HTTP Basic authentication as uWSGI's router does it.

use base64::Engine;

/// Whom a `basicauth` rule lets in.
#[derive(Debug)]
pub(crate) enum Credentials {
    /// Nobody (`basicauth:REALM,`): a closing rule after `basicauth-next` ones.
    Nobody,
    /// One user and password, as given.
    Plain { user: Vec<u8>, password: Vec<u8> },
    /// The users of an htpasswd file, read on every check (so edits apply
    /// at once, as in uWSGI): `{SHA}` and crypt(3) hashes (DES, `$1$`,
    /// `$2y$`, `$5$`, `$6$`).
    File(std::path::PathBuf),
}

impl Credentials {
    pub(crate) fn parse(spec: &str) -> Credentials {
        match spec.split_once(':') {
            _ if spec.is_empty() => Credentials::Nobody,
            Some((user, password)) => Credentials::Plain {
                user: user.as_bytes().to_vec(),
                password: password.as_bytes().to_vec(),
            },
            None => Credentials::File(spec.into()),
        }
    }

    /// The user an `Authorization` value proves, if any.
    pub(crate) fn check(&self, authorization: &[u8]) -> Option<Vec<u8>> {
        let encoded = authorization.strip_prefix(b"Basic ")?.trim_ascii();
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let admitted = match self {
            Credentials::Nobody => false,
            Credentials::Plain { user: u, password: p } => same(user, u) & same(password, p),
            Credentials::File(path) => in_htpasswd(path, user, password),
        };
        admitted.then(|| user.to_vec())
    }
}

/// Compares in time that depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn in_htpasswd(path: &std::path::Path, user: &[u8], password: &[u8]) -> bool {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(err) => {
            tracing::warn!("basicauth: {}: {err}", path.display());
            return false;
        }
    };
    text.split(|&b| b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else { return false };
        let (name, hash) = (&line[..colon], &line[colon + 1..]);
        if !same(name, user) {
            return false;
        }
        let Ok(hash) = std::str::from_utf8(hash) else { return false };
        if let Some(sha) = hash.strip_prefix("{SHA}") {
            let digest = sha1_smol::Sha1::from(password).digest().bytes();
            return same(base64::engine::general_purpose::STANDARD.encode(digest).as_bytes(), sha.as_bytes());
        }
        if hash.starts_with("$apr1$") {
            tracing::warn!(
                "basicauth: {}: $apr1$ (Apache MD5) hashes are not supported: use bcrypt (htpasswd -B) or {{SHA}}",
                path.display()
            );
            return false;
        }
        pwhash::unix::verify(password, hash)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> Vec<u8> {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass))
            .into_bytes()
    }

    #[test]
    fn plain_credentials() {
        let creds = Credentials::parse("admin:s3cret");
        assert_eq!(creds.check(&basic("admin:s3cret")), Some(b"admin".to_vec()));
        assert_eq!(creds.check(&basic("admin:wrong")), None);
        assert_eq!(creds.check(&basic("other:s3cret")), None);
        assert_eq!(creds.check(b"Bearer x"), None);
        assert_eq!(creds.check(b"Basic !!!"), None);
        assert_eq!(Credentials::parse("").check(&basic("a:b")), None);
        let colon_in_password = Credentials::parse("u:p:q");
        assert_eq!(colon_in_password.check(&basic("u:p:q")), Some(b"u".to_vec()));
    }

    #[test]
    fn htpasswd_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("htpasswd");
        // {SHA} of "secret"; DES crypt of "secret" with salt "ab"; bcrypt of "secret".
        #[allow(deprecated)] // DES is what old htpasswd files hold.
        let des = pwhash::unix_crypt::hash_with("ab", "secret").unwrap();
        let bcrypt = pwhash::bcrypt::hash("secret").unwrap();
        std::fs::write(
            &file,
            format!(
                "sha:{{SHA}}5en6G6MezRroT3XKqkdPOmY/BfQ=\ndes:{des}\nbc:{bcrypt}\napr:$apr1$x$y\n"
            ),
        )
        .unwrap();
        let creds = Credentials::parse(file.to_str().unwrap());
        for user in ["sha", "des", "bc"] {
            assert_eq!(
                creds.check(&basic(&format!("{user}:secret"))),
                Some(user.as_bytes().to_vec()),
                "{user}"
            );
            assert_eq!(creds.check(&basic(&format!("{user}:nope"))), None, "{user}");
        }
        assert_eq!(creds.check(&basic("apr:secret")), None);
        assert_eq!(creds.check(&basic("nobody:secret")), None);
        assert_eq!(Credentials::parse("/no/such/file").check(&basic("sha:secret")), None);
    }
}
