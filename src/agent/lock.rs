//! One agent per state dir. `run` holds an exclusive flock(2) on
//! `state_dir/lock` for as long as it runs, `apply` while it applies; the
//! file names the holder (pid, command) so a refusal can say who. Two
//! writers of one outbox would each count sequences on their own.

use crate::durable;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file's name inside the state dir.
pub const LOCK_FILE: &str = "lock";

/// Who holds a state dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// None when the lock file does not say (an older agent, a read-only dir).
    pub pid: Option<u32>,
    /// `run` or `apply`.
    pub command: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "kea-sync-agent {} (pid {pid})", self.command),
            None => write!(f, "another kea-sync-agent (pid unknown)"),
        }
    }
}

/// Why the state dir could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "state dir {dir} is in use by {holder}: only one agent may use a state dir (lock file {lock})"
    )]
    Held {
        dir: PathBuf,
        lock: PathBuf,
        holder: Holder,
    },
    #[error(
        "cannot lock state dir {dir}: {source} (the state dir must be writable by the agent's user)"
    )]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The state dir, held exclusively until dropped.
#[derive(Debug)]
pub struct StateDirLock {
    dir: PathBuf,
    /// None: the dir cannot be written and has no lock file, so nobody
    /// holds it (a daemon would have made the file); nothing to hold.
    _file: Option<File>,
}

impl StateDirLock {
    /// Takes `dir` (created when missing) for `command`, at once or not at
    /// all: a second agent must not wait for the first to go. Only a lock
    /// whose named agent is gone is waited for, briefly ([`RELEASE_WAIT`]).
    pub fn acquire(dir: &Path, command: &str) -> Result<StateDirLock, LockError> {
        let io = |source| LockError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        let path = dir.join(LOCK_FILE);
        let opened = durable::create_dir(dir).and_then(|()| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(durable::FILE_MODE)
                .open(&path)
        });
        let (mut file, writable) = match opened {
            Ok(file) => (file, true),
            Err(error) if cannot_write(&error) => match File::open(&path) {
                // flock works on a read-only descriptor: a reader still learns.
                Ok(file) => (file, false),
                Err(missing) if missing.kind() == ErrorKind::NotFound => {
                    tracing::debug!(dir = %dir.display(), "state dir not writable and never locked; nobody holds it");
                    return Ok(StateDirLock {
                        dir: dir.to_path_buf(),
                        _file: None,
                    });
                }
                Err(other) => return Err(io(other)),
            },
            Err(error) => return Err(io(error)),
        };
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let holder = read_holder(&mut file);
                    let alive = holder.pid.is_none_or(process_alive);
                    if wait_for_release(alive, started.elapsed()) {
                        std::thread::sleep(RELEASE_POLL);
                        continue;
                    }
                    return Err(LockError::Held {
                        dir: dir.to_path_buf(),
                        lock: path,
                        holder,
                    });
                }
                Err(TryLockError::Error(error)) => return Err(io(error)),
            }
        }
        if writable {
            // Only now, under the lock: truncating first would erase the holder's name.
            let line = format!("{} {command}\n", std::process::id());
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(line.as_bytes()))
                .map_err(io)?;
        }
        Ok(StateDirLock {
            dir: dir.to_path_buf(),
            _file: Some(file),
        })
    }

    /// Who holds `dir` now, if anyone; takes nothing and creates nothing.
    pub fn holder(dir: &Path) -> Option<Holder> {
        let mut file = File::open(dir.join(LOCK_FILE)).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(TryLockError::WouldBlock) => Some(read_holder(&mut file)),
            Err(TryLockError::Error(_)) => None,
        }
    }

    /// The state dir held.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// How long a lock whose named holder is gone may stay held: a SIGKILLed
/// agent's descriptor lives on for a moment in a child it was starting (a
/// validator between fork and exec), and systemd restarts at once.
const RELEASE_WAIT: Duration = Duration::from_secs(3);
const RELEASE_POLL: Duration = Duration::from_millis(20);

/// Whether to try the lock again: only while the agent it names is gone, and
/// not past `RELEASE_WAIT`. A live holder is refused at once. Pure.
fn wait_for_release(holder_alive: bool, waited: Duration) -> bool {
    !holder_alive && waited < RELEASE_WAIT
}

fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

fn cannot_write(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
    )
}

fn read_holder(file: &mut File) -> Holder {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    parse_holder(&text)
}

/// Reads the lock file's "PID COMMAND" line. Pure.
fn parse_holder(text: &str) -> Holder {
    let mut words = text.split_whitespace();
    let pid = words.next().and_then(|pid| pid.parse().ok());
    let command = words.next().unwrap_or("run").to_string();
    Holder { pid, command }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lock_left_by_a_gone_agent_is_waited_for() {
        let cases = [
            (true, Duration::ZERO, false),
            (false, Duration::ZERO, true),
            (false, Duration::from_millis(2900), true),
            (false, RELEASE_WAIT, false),
        ];
        for (alive, waited, wait) in cases {
            assert_eq!(wait_for_release(alive, waited), wait, "{alive} {waited:?}");
        }
    }

    #[test]
    fn a_second_holder_is_refused_naming_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let first = StateDirLock::acquire(&state, "run").expect("first");
        assert_eq!(first.dir(), state);
        let holder = StateDirLock::holder(&state).expect("held");
        assert_eq!(
            holder,
            Holder {
                pid: Some(std::process::id()),
                command: "run".into()
            }
        );
        let error = StateDirLock::acquire(&state, "apply").expect_err("refused");
        let text = error.to_string();
        assert!(text.contains(&state.display().to_string()), "{text}");
        assert!(
            text.contains(&format!("kea-sync-agent run (pid {})", std::process::id())),
            "{text}"
        );
        drop(first);
        assert_eq!(StateDirLock::holder(&state), None);
        let again = StateDirLock::acquire(&state, "apply").expect("free again");
        assert_eq!(
            StateDirLock::holder(&state).map(|h| h.command),
            Some("apply".into())
        );
        drop(again);
    }

    #[test]
    fn holder_lines_parse() {
        assert_eq!(
            parse_holder("42 apply\n"),
            Holder {
                pid: Some(42),
                command: "apply".into()
            }
        );
        assert_eq!(
            parse_holder(""),
            Holder {
                pid: None,
                command: "run".into()
            }
        );
    }
}
