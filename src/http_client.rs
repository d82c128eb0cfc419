//! The HTTP(S) client that the Kea transport (kea-ctrl-agent, Kea 3.x
//! sockets) and the upstream sink both build: rustls, a CA bundle that
//! replaces the web roots (like `curl --cacert`), an optional client
//! certificate. Files are read when the client is built, so a bad path
//! fails at start, naming the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// TLS material and the timeout of one exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// PEM bundle to trust instead of the built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and its key, together or not at all.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub timeout: Duration,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot use TLS file {path}: {why}")]
    TlsFile { path: PathBuf, why: String },
    #[error("cannot set up an HTTP(S) client for {url}: {cause}")]
    Build { url: String, cause: String },
}

/// How long a kept-alive connection may wait for the next request before the
/// client drops it: well under the central's default `--idle-timeout` (60 s),
/// so the client never sends on a connection the server is closing (the
/// request would be reset and only the retry would deliver it).
pub const POOL_IDLE: Duration = Duration::from_secs(20);

/// A client for `url` with `options`.
pub fn build(url: &str, options: &ClientOptions) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(options.timeout)
        .pool_idle_timeout(POOL_IDLE)
        .no_proxy();
    if let Some(ca_file) = &options.ca_file {
        let pem = read_tls_file(ca_file)?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| tls_error(ca_file, &e))?;
        if certs.is_empty() {
            return Err(ClientError::TlsFile {
                path: ca_file.clone(),
                why: "no PEM certificate in it".into(),
            });
        }
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    match (&options.client_cert, &options.client_key) {
        (Some(cert), Some(key)) => {
            let mut pem = read_tls_file(cert)?;
            pem.push(b'\n');
            pem.extend(read_tls_file(key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| tls_error(cert, &e))?;
            builder = builder.identity(identity);
        }
        (Some(path), None) | (None, Some(path)) => {
            return Err(ClientError::TlsFile {
                path: path.clone(),
                why: "a client certificate needs both the certificate and its key".into(),
            });
        }
        (None, None) => {}
    }
    builder.build().map_err(|e| ClientError::Build {
        url: url.to_string(),
        cause: with_causes(&e),
    })
}

/// The error and all its causes on one line: reqwest's own message alone
/// ("error sending request") hides whether it was a refusal or a TLS failure.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Why a request failed, once and in words, for a message that names the URL
/// itself: reqwest's chain says it three times ("error sending request for
/// url (...): client error (Connect): tcp connect error: Connection refused").
pub fn why_failed(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer within the timeout".into();
    }
    let mut deepest: &dyn std::error::Error = error;
    while let Some(cause) = deepest.source() {
        deepest = cause;
    }
    if let Some(io) = deepest.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind::*;
        let said = match io.kind() {
            ConnectionRefused => {
                Some("connection refused: nothing listens on that address and port")
            }
            ConnectionReset | ConnectionAborted | BrokenPipe => {
                Some("the connection was closed before an answer")
            }
            TimedOut => Some("the connection timed out: a firewall, or a host that is down"),
            HostUnreachable | NetworkUnreachable => Some("no route to that host"),
            AddrNotAvailable => Some("that address is not available here"),
            _ => None,
        };
        if let Some(said) = said {
            return said.into();
        }
    }
    let text = deepest.to_string();
    if text.contains("failed to lookup address") || text.contains("Name or service not known") {
        return format!("the host name does not resolve ({text})");
    }
    if text.contains("certificate") || text.contains("handshake") {
        return format!("TLS: {text}");
    }
    text
}

fn read_tls_file(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::TlsFile {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

fn tls_error(path: &Path, error: &reqwest::Error) -> ClientError {
    ClientError::TlsFile {
        path: path.to_path_buf(),
        why: with_causes(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_said_once_in_words() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        let error = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .expect_err("nothing listens");
        let said = why_failed(&error);
        assert_eq!(
            said,
            "connection refused: nothing listens on that address and port"
        );
        assert!(
            with_causes(&error).contains("error sending request"),
            "reqwest's chain"
        );
    }

    #[test]
    fn tls_files_are_read_at_build_and_named_when_bad() {
        let missing = ClientOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..ClientOptions::default()
        };
        let error = build("https://127.0.0.1:1/", &missing).expect_err("refused");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
        let half = ClientOptions {
            client_cert: Some("/etc/hostname".into()),
            ..ClientOptions::default()
        };
        let error = build("https://127.0.0.1:1/", &half).expect_err("refused");
        assert!(
            error
                .to_string()
                .contains("both the certificate and its key"),
            "{error}"
        );
        assert!(build("http://127.0.0.1:1/", &ClientOptions::default()).is_ok());
    }
}
