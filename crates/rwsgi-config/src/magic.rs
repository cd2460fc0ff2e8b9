//! uWSGI's magic variables (`%d`, `%n`, `%k`, ...): expanded in the keys
//! and values of config files as each file is read. Some describe the file
//! being read, their upper-case twins the first file read, the rest the
//! process (host name, CPU count, user).

use std::path::Path;

/// What the file-describing variables of one file expand to.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileMagic {
    /// `%o`: the name as given (`app.ini:section` included).
    given: String,
    /// `%p`: the absolute path.
    path: String,
    /// `%s`: the file name.
    file_name: String,
    /// `%d`: the absolute directory, with a trailing `/`.
    dir: String,
    /// `%e`: the extension.
    extension: String,
    /// `%n`: the file name without its extension.
    stem: String,
    /// `%c`: the name of the directory holding the file.
    dir_name: String,
    /// `%x`: the section read.
    section: String,
    /// `%i`: the inode.
    inode: String,
    /// `%j`: djb33x hash of `%p`, in hex.
    hash: String,
    /// `%0`..`%9`: the components of `%d`.
    components: Vec<String>,
}

impl FileMagic {
    /// The variables of `absolute` (canonical), named `given` by the user.
    pub(crate) fn new(given: &str, absolute: &Path, section: &str) -> FileMagic {
        let text = |p: Option<&std::ffi::OsStr>| {
            p.map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
        };
        let parent = absolute.parent().unwrap_or(Path::new("/"));
        let parent_text = parent.to_string_lossy();
        let dir = if parent_text.ends_with('/') {
            parent_text.into_owned()
        } else {
            format!("{parent_text}/")
        };
        let path = absolute.to_string_lossy().into_owned();
        let inode = {
            use std::os::unix::fs::MetadataExt;
            std::fs::symlink_metadata(absolute).map(|m| m.ino().to_string()).unwrap_or_default()
        };
        FileMagic {
            given: given.to_string(),
            file_name: text(absolute.file_name()),
            extension: text(absolute.extension()),
            stem: text(absolute.file_stem()),
            dir_name: text(parent.file_name()),
            section: section.to_string(),
            inode,
            hash: format!("{:08x}", djb33x(path.as_bytes()).swap_bytes()),
            components: dir
                .split('/')
                .filter(|c| !c.is_empty())
                .take(10)
                .map(str::to_string)
                .collect(),
            dir,
            path,
        }
    }

    fn get(&self, var: char) -> Option<&str> {
        Some(match var {
            'o' => &self.given,
            'p' => &self.path,
            's' => &self.file_name,
            'd' => &self.dir,
            'e' => &self.extension,
            'n' => &self.stem,
            'c' => &self.dir_name,
            'x' => &self.section,
            'i' => &self.inode,
            'j' => &self.hash,
            '0'..='9' => {
                let index = var as usize - '0' as usize;
                self.components.get(index).map_or("", String::as_str)
            }
            _ => return None,
        })
    }
}

/// uWSGI's file-name hash (Bernstein's, with xor), for `%j`. Its bytes
/// are C `char`s, which sign-extend on the machines uWSGI runs on.
fn djb33x(bytes: &[u8]) -> u32 {
    bytes.iter().fold(5381u32, |hash, &b| {
        (hash << 5).wrapping_add(hash) ^ (i32::from(b.cast_signed()).cast_unsigned())
    })
}

/// What the process-wide variables expand to, read once.
#[derive(Debug, Clone)]
pub(crate) struct ProcessMagic {
    cwd: String,
    hostname: String,
    start_secs: String,
    start_micros: String,
    cpus: String,
    uid: String,
    user: String,
    gid: String,
    group: String,
    binary: String,
}

impl ProcessMagic {
    pub(crate) fn read() -> ProcessMagic {
        use nix::unistd::{Gid, Group, Uid, User};
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let (uid, gid) = (Uid::current(), Gid::current());
        let user = User::from_uid(uid).ok().flatten().map_or_else(|| uid.to_string(), |u| u.name);
        let group = Group::from_gid(gid).ok().flatten().map_or_else(|| gid.to_string(), |g| g.name);
        ProcessMagic {
            cwd: std::env::current_dir()
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_default(),
            hostname: hostname(),
            start_secs: now.as_secs().to_string(),
            start_micros: now.as_micros().to_string(),
            cpus: std::thread::available_parallelism().map_or(1, usize::from).to_string(),
            uid: uid.to_string(),
            user,
            gid: gid.to_string(),
            group,
            binary: std::env::current_exe()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn hostname(&self) -> &str {
        &self.hostname
    }

    fn get(&self, var: char) -> Option<&str> {
        Some(match var {
            'v' => &self.cwd,
            'h' => &self.hostname,
            't' => &self.start_secs,
            'T' => &self.start_micros,
            'V' => env!("CARGO_PKG_VERSION"),
            'k' => &self.cpus,
            'u' => &self.uid,
            'U' => &self.user,
            'g' => &self.gid,
            'G' => &self.group,
            'b' => &self.binary,
            '[' => "\x1b",
            _ => return None,
        })
    }
}

/// The host name, as `%h` and `if-hostname` see it.
pub(crate) fn hostname() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The variables in scope while one file is read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Magic<'a> {
    pub file: &'a FileMagic,
    /// The first file read: `%O`, `%P`, ... (upper case).
    pub first: &'a FileMagic,
    pub process: &'a ProcessMagic,
}

impl Magic<'_> {
    /// `text` with every magic variable expanded. `%(` is left for the
    /// placeholder pass, a `%` at the very end stays; a `%x` that is no
    /// variable becomes nothing, as in uWSGI, and is reported in `unknown`.
    pub(crate) fn expand(&self, text: &str, unknown: &mut Vec<char>) -> String {
        if !text.contains('%') {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                None => out.push('%'),
                Some('%') => out.push('%'),
                Some('(') => out.push_str("%("),
                Some(var) => match self.lookup(var) {
                    Some(value) => out.push_str(value),
                    None => unknown.push(var),
                },
            }
        }
        out
    }

    fn lookup(&self, var: char) -> Option<&str> {
        match var {
            'O' | 'P' | 'S' | 'D' | 'E' | 'N' | 'C' | 'X' | 'I' | 'J' => {
                self.first.get(var.to_ascii_lowercase())
            }
            _ => self.file.get(var).or_else(|| self.process.get(var)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn file_variables() {
        let file = FileMagic::new("conf/app.ini:prod", Path::new("/srv/site/conf/app.ini"), "prod");
        let first = FileMagic::new("/etc/base.yaml", Path::new("/etc/base.yaml"), "uwsgi");
        let process = ProcessMagic::read();
        let magic = Magic { file: &file, first: &first, process: &process };
        let mut unknown = Vec::new();
        for (text, want) in [
            ("%d", "/srv/site/conf/"),
            ("%p", "/srv/site/conf/app.ini"),
            ("%s", "app.ini"),
            ("%n", "app"),
            ("%e", "ini"),
            ("%c", "conf"),
            ("%x", "prod"),
            ("%o", "conf/app.ini:prod"),
            ("%0-%1-%2-%3", "srv-site-conf-"),
            ("%D%N.%E", "/etc/base.yaml"),
            ("%X", "uwsgi"),
            ("100%%", "100%"),
            ("50%", "50%"),
            ("%(keep)", "%(keep)"),
            ("%[", "\x1b"),
            ("%V", env!("CARGO_PKG_VERSION")),
        ] {
            assert_eq!(magic.expand(text, &mut unknown), want, "{text}");
        }
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(magic.expand("a%zb%qc", &mut unknown), "abc");
        assert_eq!(unknown, ['z', 'q']);
        assert_eq!(magic.expand("%j", &mut unknown).len(), 8);
    }

    #[test]
    fn process_variables() {
        let process = ProcessMagic::read();
        let file = FileMagic::default();
        let magic = Magic { file: &file, first: &file, process: &process };
        let mut unknown = Vec::new();
        let cpus: usize = magic.expand("%k", &mut unknown).parse().unwrap();
        assert!(cpus >= 1);
        assert_eq!(magic.expand("%h", &mut unknown), hostname());
        assert_eq!(magic.expand("%u", &mut unknown), nix::unistd::getuid().to_string());
        assert!(!magic.expand("%U", &mut unknown).is_empty());
        assert!(magic.expand("%t", &mut unknown).parse::<u64>().unwrap() > 1_700_000_000);
        assert!(unknown.is_empty());
    }

    #[test]
    fn djb33x_matches_uwsgis() {
        // uWSGI computes hash = hash * 33 ^ c from 5381 over the bytes.
        assert_eq!(djb33x(b""), 5381);
        assert_eq!(djb33x(b"a"), (5381u32 * 33) ^ 97);
        assert_eq!(djb33x(&[0xe9]), (5381u32 * 33) ^ 0xffff_ffe9);
    }
}
