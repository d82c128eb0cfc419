//! Kea's unix control socket: raw JSON, one command per connection, the
//! reply ends at EOF. Kea drops a client that stops reading for ~10 s, so the
//! reply is read continuously into one growing buffer, never paused.

use super::Command;
use super::accounts;
use super::error::KeaError;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// A Kea daemon's unix control socket.
#[derive(Debug, Clone)]
pub struct UnixControl {
    path: PathBuf,
    timeout: Duration,
}

impl UnixControl {
    /// `timeout` bounds a whole exchange; a large reload takes seconds.
    pub fn new(path: impl Into<PathBuf>, timeout: Duration) -> UnixControl {
        UnixControl {
            path: path.into(),
            timeout,
        }
    }

    /// The socket file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one request and reads the whole reply body until EOF.
    pub(crate) async fn exchange(&self, command: &Command) -> Result<Vec<u8>, KeaError> {
        let request = command.to_request(None);
        let io = async {
            let mut stream = UnixStream::connect(&self.path)
                .await
                .map_err(|e| self.connect_error(e))?;
            stream
                .write_all(&request)
                .await
                .map_err(|e| self.io_error(e))?;
            let mut body = Vec::with_capacity(64 * 1024);
            stream
                .read_to_end(&mut body)
                .await
                .map_err(|e| self.io_error(e))?;
            Ok(body)
        };
        tokio::time::timeout(self.timeout, io)
            .await
            .unwrap_or_else(|_| {
                Err(KeaError::Timeout {
                    endpoint: self.path.display().to_string(),
                    command: command.name().to_string(),
                    after: self.timeout,
                })
            })
    }

    fn io_error(&self, source: std::io::Error) -> KeaError {
        KeaError::SocketIo {
            path: self.path.clone(),
            source,
        }
    }

    fn connect_error(&self, error: std::io::Error) -> KeaError {
        let path = self.path.clone();
        match error.kind() {
            ErrorKind::NotFound => KeaError::SocketMissing { path },
            ErrorKind::PermissionDenied => KeaError::SocketPermission {
                hint: permission_hint(&path),
                path,
            },
            ErrorKind::ConnectionRefused => KeaError::SocketRefused { path },
            _ => KeaError::SocketIo {
                path,
                source: error,
            },
        }
    }
}

/// Says who owns the socket (or the directory that blocks it) and who we
/// are, so the operator knows which user the agent must run as.
fn permission_hint(path: &Path) -> String {
    let me = accounts::current_uid()
        .map(accounts::user_name)
        .unwrap_or_else(|| "this user".into());
    let blocking = std::fs::metadata(path)
        .map(|meta| (path.to_path_buf(), meta))
        .or_else(|_| {
            let dir = path.parent().unwrap_or(Path::new("/"));
            std::fs::metadata(dir).map(|meta| (dir.to_path_buf(), meta))
        });
    match blocking {
        Ok((what, meta)) => {
            let owner = accounts::user_name(meta.uid());
            let group = accounts::group_name(meta.gid());
            format!(
                "{} is owned by {owner}:{group} with mode {:o} and the agent runs as {me}. \
                 Run the agent as {owner} (Kea's own user: _kea on Debian, kea on RHEL), \
                 or add {me} to group {group} on Kea versions whose socket is group-writable (2.6.5, 3.0.3+)",
                what.display(),
                meta.permissions().mode() & 0o7777
            )
        }
        Err(_) => format!(
            "the agent runs as {me}; run it as Kea's own user (_kea on Debian, kea on RHEL)"
        ),
    }
}
