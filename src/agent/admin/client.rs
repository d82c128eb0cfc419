//! The CLI's side of the admin API: one HTTP/1.1 request over the unix
//! admin socket, with hyper's client connection (no pool: one request per
//! command).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why the running agent could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "no kea-sync-agent answers on {socket} ({source}): is it running (systemctl status kea-sync-agent)? Its socket is [agent] admin_socket of its agent config, or give --admin-socket PATH"
    )]
    NotRunning {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the agent on {socket} did not answer {what} within {after:?}")]
    Timeout {
        socket: PathBuf,
        what: String,
        after: Duration,
    },
    #[error("the agent on {socket} broke off {what}: {why}")]
    Broken {
        socket: PathBuf,
        what: String,
        why: String,
    },
}

/// Sends `method path` (with `body`) to the agent on `socket`; its status
/// and body.
pub async fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), AdminError> {
    let what = format!("{method} {path}");
    match tokio::time::timeout(timeout, exchange(socket, method, path, body, &what)).await {
        Ok(result) => result,
        Err(_) => Err(AdminError::Timeout {
            socket: socket.to_path_buf(),
            what,
            after: timeout,
        }),
    }
}

async fn exchange(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    what: &str,
) -> Result<(u16, Vec<u8>), AdminError> {
    let broken = |why: String| AdminError::Broken {
        socket: socket.to_path_buf(),
        what: what.to_string(),
        why,
    };
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| AdminError::NotRunning {
            socket: socket.to_path_buf(),
            source,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| broken(e.to_string()))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "kea-sync-agent")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| broken(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| broken(e.to_string()))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| broken(e.to_string()))?
        .to_bytes();
    Ok((status, bytes.to_vec()))
}
