//! `basicauth:REALM,USER:PASSWORD` and `basicauth:REALM,HTPASSWD-FILE`:
//! HTTP Basic authentication as uWSGI's router does it.

use base64::Engine;

/// Longer passwords are refused unchecked: hashing one must not cost
/// the server what the client chooses.
const MAX_PASSWORD: usize = 256;

/// What an `Authorization` header proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Proof {
    /// Who came in.
    User(Vec<u8>),
    /// Well-formed credentials this rule does not know (a later
    /// `basicauth` may).
    Wrong,
    /// None, not Basic, not base64, no `user:password`, too long: asked
    /// again at once, whatever the rule, as in uWSGI.
    Malformed,
}

/// Whom a `basicauth` rule lets in.
#[derive(Debug, Clone)]
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

    /// Whether checking costs real time (an htpasswd file's hashes): the
    /// caller runs it off the I/O thread.
    pub(crate) fn is_slow(&self) -> bool {
        matches!(self, Credentials::File(_))
    }

    /// What an `Authorization` value proves.
    pub(crate) fn check(&self, authorization: &[u8]) -> Proof {
        let decoded = authorization.strip_prefix(b"Basic ").and_then(|encoded| {
            base64::engine::general_purpose::STANDARD.decode(encoded.trim_ascii()).ok()
        });
        let Some(decoded) = decoded else { return Proof::Malformed };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else { return Proof::Malformed };
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        if password.len() > MAX_PASSWORD {
            return Proof::Malformed;
        }
        let admitted = match self {
            Credentials::Nobody => return Proof::Malformed,
            Credentials::Plain { user: u, password: p } => same(user, u) & same(password, p),
            Credentials::File(path) => in_htpasswd(path, user, password),
        };
        if admitted { Proof::User(user.to_vec()) } else { Proof::Wrong }
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
        assert_eq!(creds.check(&basic("admin:s3cret")), Proof::User(b"admin".to_vec()));
        assert_eq!(creds.check(&basic("admin:wrong")), Proof::Wrong);
        assert_eq!(creds.check(&basic("other:s3cret")), Proof::Wrong);
        assert_eq!(creds.check(b"Bearer x"), Proof::Malformed);
        assert_eq!(creds.check(b"Basic !!!"), Proof::Malformed);
        assert_eq!(creds.check(&basic("no-colon")), Proof::Malformed);
        assert_eq!(creds.check(&basic(&format!("admin:{}", "x".repeat(300)))), Proof::Malformed);
        assert_eq!(Credentials::parse("").check(&basic("a:b")), Proof::Malformed);
        let colon_in_password = Credentials::parse("u:p:q");
        assert_eq!(colon_in_password.check(&basic("u:p:q")), Proof::User(b"u".to_vec()));
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
                Proof::User(user.as_bytes().to_vec()),
                "{user}"
            );
            assert_eq!(creds.check(&basic(&format!("{user}:nope"))), Proof::Wrong, "{user}");
        }
        assert_eq!(creds.check(&basic("apr:secret")), Proof::Wrong);
        assert_eq!(creds.check(&basic("nobody:secret")), Proof::Wrong);
        assert_eq!(Credentials::parse("/no/such/file").check(&basic("sha:secret")), Proof::Wrong);
    }
}
