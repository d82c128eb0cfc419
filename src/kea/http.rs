//! Kea over HTTP(S): kea-ctrl-agent (2.2-3.0, wants a `service` list) and
//! the daemons' own HTTP control sockets (2.7.2+/3.x, ignore `service`).
//! Both wrap replies in a list.

use super::error::KeaError;
use super::{Command, Service};
use crate::http_client::{self, ClientOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to reach Kea over HTTP(S).
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Sent as `"service": [name]`; needed for kea-ctrl-agent, ignored by direct sockets.
    pub service: Option<Service>,
    /// Basic-auth user; the password comes from `password_file`, else `password`.
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    /// The password itself, when a Kea config holds it (HA peers).
    pub password: Option<Password>,
    /// PEM bundle to trust instead of the built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for Kea's `cert-required`.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Bounds one whole exchange.
    pub timeout: Duration,
}

/// A password that never shows in Debug output or logs.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(text: impl Into<String>) -> Password {
        Password(text.into())
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

/// A Kea HTTP(S) control endpoint.
#[derive(Debug, Clone)]
pub struct HttpControl {
    url: String,
    service: Option<Service>,
    credentials: Option<(String, Password)>,
    client: reqwest::Client,
    timeout: Duration,
}

impl HttpControl {
    /// Reads the password and TLS files now, so a bad path fails at start.
    pub fn new(url: &str, options: &HttpOptions) -> Result<HttpControl, KeaError> {
        let credentials = match (&options.user, &options.password_file) {
            (Some(user), Some(file)) => Some((user.clone(), read_password(file)?)),
            (Some(user), None) => Some((
                user.clone(),
                options.password.clone().unwrap_or(Password(String::new())),
            )),
            (None, _) => None,
        };
        let client = http_client::build(url, &options.client_options())?;
        Ok(HttpControl {
            url: url.to_string(),
            service: options.service,
            credentials,
            client,
            timeout: options.timeout,
        })
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// POSTs one command and returns the whole reply body.
    pub(crate) async fn exchange(&self, command: &Command) -> Result<Vec<u8>, KeaError> {
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(command.to_request(self.service));
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(&password.0));
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.request_error(&e, command))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.request_error(&e, command))?;
        match status.as_u16() {
            // Takes the buffer over when reqwest holds it alone (no copy).
            200..=299 => Ok(Vec::from(body)),
            code @ (401 | 403) => Err(KeaError::Unauthorized {
                url: self.url.clone(),
                status: code,
            }),
            code => Err(KeaError::HttpStatus {
                url: self.url.clone(),
                status: code,
                body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
            }),
        }
    }

    fn request_error(&self, error: &reqwest::Error, command: &Command) -> KeaError {
        if error.is_timeout() {
            KeaError::Timeout {
                endpoint: self.url.clone(),
                command: command.name().to_string(),
                after: self.timeout,
            }
        } else {
            KeaError::HttpUnreachable {
                url: self.url.clone(),
                cause: http_client::why_failed(error),
            }
        }
    }
}

impl HttpOptions {
    /// The TLS part, for the shared client builder.
    fn client_options(&self) -> ClientOptions {
        ClientOptions {
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            timeout: self.timeout,
        }
    }
}

fn read_password(path: &Path) -> Result<Password, KeaError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeaError::PasswordFile {
        path: path.to_path_buf(),
        source,
    })?;
    // Files written by `echo` end with a newline that is not part of the password.
    Ok(Password(text.trim_end_matches(['\r', '\n']).to_string()))
}
