//! Opening the admin socket: a stale file from a killed agent is replaced,
//! a live agent's is never taken over; mode 0660 and the configured group.

use crate::kea::accounts;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why the admin socket could not be opened (the daemon runs without it).
#[derive(Debug, thiserror::Error)]
pub enum AdminSocketError {
    #[error(
        "admin socket {path}: another kea-sync-agent answers there; give this one its own [agent] admin_socket"
    )]
    InUse { path: PathBuf },
    #[error(
        "admin socket {path}: {source} (its folder must exist and be writable by the agent's user: the unit's RuntimeDirectory makes /run/kea-sync-agent)"
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("admin socket {path}: no group \"{group}\" ([agent] admin_group)")]
    NoGroup { path: PathBuf, group: String },
}

/// Binds `path` (mode 0660, group `group` when given).
pub fn bind(
    path: &Path,
    group: Option<&str>,
) -> Result<tokio::net::UnixListener, AdminSocketError> {
    let io = |source| AdminSocketError::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.symlink_metadata().is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(AdminSocketError::InUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io)?;
    // A group that cannot be given leaves the socket to the agent's own group.
    if let Some(group) = group {
        let given = accounts::group_id(group)
            .ok_or_else(|| AdminSocketError::NoGroup {
                path: path.to_path_buf(),
                group: group.to_string(),
            })
            .and_then(|gid| std::os::unix::fs::chown(path, None, Some(gid)).map_err(io));
        if let Err(error) = given {
            tracing::warn!("{error}; the socket keeps the agent's own group");
        }
    }
    Ok(listener)
}
