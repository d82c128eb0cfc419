//! What can go wrong watching config files, each naming the directory involved.

use std::path::{Path, PathBuf};

/// A failure to start the watcher or to watch a directory.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "cannot watch directory {path}: the inotify watch limit ({}) is reached; raise it with `sysctl fs.inotify.max_user_watches=524288` and keep that in /etc/sysctl.d/",
        limit_text(*.limit)
    )]
    WatchLimit { path: PathBuf, limit: Option<u64> },

    #[error(
        "cannot start an inotify watcher: the inotify instance limit ({}) is reached; raise it with `sysctl fs.inotify.max_user_instances=512` and keep that in /etc/sysctl.d/",
        limit_text(*.limit)
    )]
    InstanceLimit {
        limit: Option<u64>,
        #[source]
        source: notify::Error,
    },

    #[error("cannot watch {}: {source}", path_text(.path.as_deref()))]
    Backend {
        path: Option<PathBuf>,
        #[source]
        source: notify::Error,
    },

    #[error("cannot start the thread that forwards file events: {source}")]
    Thread {
        #[source]
        source: std::io::Error,
    },
}

fn limit_text(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unknown".to_string(), |limit| limit.to_string())
}

fn path_text(path: Option<&Path>) -> String {
    path.map_or_else(
        || "config files".to_string(),
        |path| format!("directory {}", path.display()),
    )
}

/// The value of one inotify sysctl, for the advice.
fn inotify_limit(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(Path::new("/proc/sys/fs/inotify").join(name)).ok()?;
    text.trim().parse().ok()
}

/// What a failed watch of a directory means.
pub enum WatchFailure {
    /// The directory is not there (yet): retried on the next refresh.
    Missing,
    Fatal(WatchError),
}

/// Sorts a notify error from adding a watch on `dir`.
pub fn classify_watch(source: notify::Error, dir: &Path) -> WatchFailure {
    match &source.kind {
        notify::ErrorKind::PathNotFound => WatchFailure::Missing,
        notify::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            WatchFailure::Missing
        }
        notify::ErrorKind::MaxFilesWatch => WatchFailure::Fatal(WatchError::WatchLimit {
            path: dir.to_path_buf(),
            limit: inotify_limit("max_user_watches"),
        }),
        _ => WatchFailure::Fatal(WatchError::Backend {
            path: Some(dir.to_path_buf()),
            source,
        }),
    }
}

/// Sorts a notify error from starting a watcher.
pub fn classify_start(source: notify::Error) -> WatchError {
    // EMFILE: inotify_init1 hit fs.inotify.max_user_instances (or the open-files limit).
    const EMFILE: i32 = 24;
    match &source.kind {
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(EMFILE) => {
            WatchError::InstanceLimit {
                limit: inotify_limit("max_user_instances"),
                source,
            }
        }
        _ => WatchError::Backend { path: None, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_limit_gets_advice() {
        let failure = classify_watch(
            notify::Error::new(notify::ErrorKind::MaxFilesWatch),
            Path::new("/etc/kea"),
        );
        let WatchFailure::Fatal(error) = failure else {
            panic!("a watch limit is fatal");
        };
        let text = error.to_string();
        assert!(text.contains("/etc/kea"), "{text}");
        assert!(text.contains("fs.inotify.max_user_watches"), "{text}");
    }

    #[test]
    fn missing_directory_is_retried() {
        let not_found = notify::Error::io(std::io::Error::from(std::io::ErrorKind::NotFound));
        for source in [notify::Error::path_not_found(), not_found] {
            assert!(matches!(
                classify_watch(source, Path::new("/etc/kea")),
                WatchFailure::Missing
            ));
        }
    }

    #[test]
    fn instance_limit_gets_advice() {
        let source = notify::Error::io(std::io::Error::from_raw_os_error(24));
        let text = classify_start(source).to_string();
        assert!(text.contains("fs.inotify.max_user_instances"), "{text}");
    }
}
