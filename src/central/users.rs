//! The people who may read the central: a file of `NAME:HASH` lines in
//! htpasswd's bcrypt format (`htpasswd -nbB NAME PASSWORD`, or
//! `kea-sync-central user add NAME`). A password that checked out once is
//! remembered by digest, so bcrypt's deliberate slowness is paid per user
//! and password, not per request.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// bcrypt's cost for new passwords (htpasswd -B uses 5; 12 is today's advice).
pub const COST: u32 = 12;

/// Why the users file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read users file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("users file {path}, line {line}: {problem}")]
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error(
        "users file {path} names no user: add one with kea-sync-central user add NAME --users-file {path}"
    )]
    Empty { path: PathBuf },
    #[error("cannot write users file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The readers, by name.
#[derive(Debug, Default)]
pub struct Users {
    hashes: HashMap<String, String>,
    /// Digests of (name, password, hash) that verified.
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl Users {
    /// Reads and parses a users file; warns when others may read it.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let users = Users::parse(&text).map_err(|(line, problem)| UsersError::Line {
            path: path.to_path_buf(),
            line,
            problem,
        })?;
        if users.hashes.is_empty() {
            return Err(UsersError::Empty {
                path: path.to_path_buf(),
            });
        }
        warn_if_readable(path, "users file");
        Ok(users)
    }

    /// Parses `NAME:HASH` lines (`#` lines and blank lines skipped).
    pub fn parse(text: &str) -> Result<Users, (usize, String)> {
        let mut hashes = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, hash)) = line.split_once(':') else {
                return Err((
                    index + 1,
                    "expected NAME:HASH (htpasswd -nbB NAME PASSWORD)".into(),
                ));
            };
            if !["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
                return Err((
                    index + 1,
                    format!(
                        "the hash of {name} is not bcrypt ($2y$...): make it with htpasswd -B, or kea-sync-central user add"
                    ),
                ));
            }
            if hashes.insert(name.to_string(), hash.to_string()).is_some() {
                return Err((index + 1, format!("user {name} is listed twice")));
            }
        }
        Ok(Users {
            hashes,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Whether `password` is `name`'s.
    pub fn check(&self, name: &str, password: &str) -> bool {
        let Some(hash) = self.hashes.get(name) else {
            return false;
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(name.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update([0])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.contains(&key) {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            verified.insert(key);
        }
        ok
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Adds or replaces `name`'s line in the users file at `path` (created
/// 0600); returns whether the user was new.
pub fn add(path: &Path, name: &str, password: &str) -> Result<bool, UsersError> {
    let hash = bcrypt::hash(password, COST).map_err(|e| UsersError::Hash(e.to_string()))?;
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(UsersError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let prefix = format!("{name}:");
    let mut new = false;
    let mut lines: Vec<String> = old
        .lines()
        .filter(|line| !line.trim().starts_with(&prefix))
        .map(str::to_string)
        .collect();
    if lines.len() == old.lines().count() {
        new = true;
    }
    lines.push(format!("{name}:{hash}"));
    let text = lines.join("\n") + "\n";
    let write_failed = |source| UsersError::Write {
        path: path.to_path_buf(),
        source,
    };
    let (mode, group) = kept_access(path);
    crate::durable::write(path, mode, text.as_bytes()).map_err(write_failed)?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(write_failed)?;
    }
    Ok(new)
}

/// The mode and group a rewritten users file gets, so the service keeps
/// reading it: an existing file's (never readable by others), else for a new
/// file in a directory closed to others (/etc/kea-sync-central, 0750
/// root:kea-sync-central) that directory's group with 0640, else 0600.
fn kept_access(path: &Path) -> (u32, Option<u32>) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(old) = std::fs::metadata(path) {
        return ((old.mode() & 0o770) | 0o600, Some(old.gid()));
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match std::fs::metadata(parent) {
        Ok(dir) if dir.mode() & 0o007 == 0 => (0o640, Some(dir.gid())),
        _ => (0o600, None),
    }
}

/// Warns when a file holding credentials may be read by any user.
pub fn warn_if_readable(path: &Path, what: &str) {
    let mode = std::fs::metadata(path).map_or(0, |m| m.permissions().mode());
    if mode & 0o004 != 0 {
        tracing::warn!(
            "{what} {} is readable by every user: chmod 600 it",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_lines_check_and_bad_lines_are_named() {
        // htpasswd -B writes $2y$, the same algorithm as the crate's $2b$.
        let hash = bcrypt::hash("wonderland", 4)
            .expect("hash")
            .replacen("$2b$", "$2y$", 1);
        let alice = format!("alice:{hash}");
        let users = Users::parse(&format!("# readers\n{alice}\n")).expect("parses");
        assert_eq!(users.len(), 1);
        assert!(users.check("alice", "wonderland"));
        assert!(users.check("alice", "wonderland"), "again, from the cache");
        assert!(!users.check("alice", "looking-glass"));
        assert!(!users.check("bob", "wonderland"));
        assert_eq!(Users::parse("bob\n").expect_err("no colon").0, 1);
        assert_eq!(Users::parse("bob:{SHA}abc\n").expect_err("not bcrypt").0, 1);
        assert_eq!(
            Users::parse(&format!("{alice}\n{alice}\n"))
                .expect_err("twice")
                .0,
            2
        );
    }

    #[test]
    fn add_writes_a_line_that_checks_and_replaces_the_old_one() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o750))
            .expect("chmod");
        let path = dir.path().join("users");
        assert!(add(&path, "carol", "first").expect("add"));
        assert!(!add(&path, "carol", "second").expect("replace"));
        let users = Users::load(&path).expect("load");
        assert_eq!(users.len(), 1);
        assert!(users.check("carol", "second"));
        assert!(!users.check("carol", "first"));
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o640, "a new file in a dir closed to others");
    }

    #[test]
    fn add_keeps_the_group_and_mode_the_service_reads_it_by() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("users");
        std::fs::write(&path, "").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        // Group 1 stands for the service's group (root may chown to any).
        let group = if std::os::unix::fs::chown(&path, None, Some(1)).is_ok() {
            1
        } else {
            std::fs::metadata(&path).expect("meta").gid()
        };
        add(&path, "dave", "pw").expect("add");
        let meta = std::fs::metadata(&path).expect("meta");
        assert_eq!(meta.mode() & 0o777, 0o640, "kept, without the world's read");
        assert_eq!(meta.gid(), group);

        let open = tempfile::tempdir().expect("dir");
        std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let path = open.path().join("users");
        add(&path, "erin", "pw").expect("add");
        let mode = std::fs::metadata(&path).expect("meta").mode();
        assert_eq!(mode & 0o777, 0o600, "a new file where others can look");
    }
}
