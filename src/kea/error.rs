//! What can go wrong talking to Kea, each naming the socket or URL involved.

use super::Outcome;
use std::path::PathBuf;
use std::time::Duration;

/// A failure to get an answer from Kea, or Kea refusing a typed command.
#[derive(Debug, thiserror::Error)]
pub enum KeaError {
    #[error(
        "Kea control socket {path} does not exist: is Kea running, and is this the socket-name of its control-socket?"
    )]
    SocketMissing { path: PathBuf },

    #[error("permission denied connecting to Kea control socket {path}: {hint}")]
    SocketPermission { path: PathBuf, hint: String },

    #[error(
        "nobody listens on Kea control socket {path} (connection refused): Kea is not running, or it exited without removing its socket"
    )]
    SocketRefused { path: PathBuf },

    #[error("cannot use Kea control socket {path}: {source}")]
    SocketIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "Kea at {endpoint} did not finish answering '{command}' within {} s (raise the timeout for large configs)",
        after.as_secs_f64()
    )]
    Timeout {
        endpoint: String,
        command: String,
        after: Duration,
    },

    #[error(
        "Kea at {endpoint} answered '{command}' with {why}: the reply was truncated or is not from Kea"
    )]
    BadReply {
        endpoint: String,
        command: String,
        why: String,
    },

    #[error(
        "cannot reach Kea at {url}: {cause}; check that kea-ctrl-agent, or on Kea 2.7+ the daemon's own HTTP control socket, listens at that URL"
    )]
    HttpUnreachable { url: String, cause: String },

    #[error(
        "{url} refused our credentials (HTTP {status}): check the user name and the password file"
    )]
    Unauthorized { url: String, status: u16 },

    #[error("{url} answered HTTP {status}: {body}")]
    HttpStatus {
        url: String,
        status: u16,
        body: String,
    },

    #[error("cannot read password file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    HttpClient(#[from] crate::http_client::ClientError),

    #[error(
        "Kea at {endpoint} is version {version}, older than {}, the oldest kea-sync-agent works with: upgrade Kea (Debian 12 ships 2.2.0)",
        super::OLDEST_SUPPORTED
    )]
    TooOld { endpoint: String, version: String },

    #[error("Kea at {endpoint} answered '{command}' with result {} ({outcome:?}): {text}", outcome.code())]
    Refused {
        endpoint: String,
        command: String,
        outcome: Outcome,
        text: String,
    },
}

impl KeaError {
    /// True when Kea could not be reached or did not answer intelligibly
    /// (as opposed to Kea answering and refusing).
    pub fn is_unreachable(&self) -> bool {
        !matches!(self, KeaError::Refused { .. } | KeaError::TooOld { .. })
    }
}
