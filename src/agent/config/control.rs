//! Finding a service's control channel: from the agent config, else from the
//! `control-socket` / `control-sockets` of Kea's own config file.

use super::{ConfigError, ServiceConfig};
use crate::dialect::{Style, expand_file};
use crate::kea::{ControlChannel, HttpControl, HttpOptions, Password, Service, UnixControl};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Kea's compile-time control socket directory in distro packages (2.6.3+/3.x).
const KEA_CONTROL_SOCKET_DIR: &str = "/run/kea";
/// Defaults of an HTTP control socket (Kea's HttpCommandConfig).
const DEFAULT_HTTP_ADDRESS: &str = "127.0.0.1";
const DEFAULT_HTTP_PORT: u64 = 8000;

/// Where a Kea daemon takes commands, as written in its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEndpoint {
    /// A unix socket's `socket-name`, possibly relative.
    Unix(PathBuf),
    /// An HTTP(S) URL.
    Http(String),
}

/// What Kea's HTTP(S) control socket asks of a client, as its config says:
/// the CA it trusts itself (`trust-anchor`, which signed its certificate in
/// the usual setup), whether it wants a client certificate, and the first
/// basic-auth client of `authentication.clients`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeaHttpAccess {
    pub trust_anchor: Option<PathBuf>,
    /// `cert-required` (Kea's default: true) on a TLS socket.
    pub cert_required: bool,
    pub client: Option<KeaClient>,
}

/// One basic-auth client of Kea's `authentication.clients`; file paths are
/// joined with `authentication.directory` as Kea joins them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KeaClient {
    pub user: Option<String>,
    pub user_file: Option<PathBuf>,
    pub password: Option<String>,
    /// The password; without a user (or user-file), `user:password`.
    pub password_file: Option<PathBuf>,
}

impl std::fmt::Debug for KeaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeaClient")
            .field("user", &self.user)
            .field("user_file", &self.user_file)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("password_file", &self.password_file)
            .finish()
    }
}

/// The control endpoint in a Kea config document (`{"Dhcp4": {...}}`):
/// `control-socket`, else the first usable entry of Kea 3.x's `control-sockets`.
pub fn control_endpoint_from_config(value: &Value, service: Service) -> Option<ControlEndpoint> {
    chosen_socket(value, service).map(|(endpoint, _)| endpoint)
}

/// What the socket `control_endpoint_from_config` picks asks of a client
/// (nothing for a unix socket).
pub fn http_access_from_config(value: &Value, service: Service) -> KeaHttpAccess {
    match chosen_socket(value, service) {
        Some((ControlEndpoint::Http(url), socket)) => access_of(socket, url.starts_with("https:")),
        _ => KeaHttpAccess::default(),
    }
}

fn chosen_socket(
    value: &Value,
    service: Service,
) -> Option<(ControlEndpoint, &Map<String, Value>)> {
    let section = value.get(service.config_key())?;
    fn with_endpoint(
        socket: &Map<String, Value>,
    ) -> Option<(ControlEndpoint, &Map<String, Value>)> {
        endpoint_of(socket).map(|e| (e, socket))
    }
    if let Some(found) = section
        .get("control-socket")
        .and_then(Value::as_object)
        .and_then(with_endpoint)
    {
        return Some(found);
    }
    section
        .get("control-sockets")?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .find_map(with_endpoint)
}

fn access_of(socket: &Map<String, Value>, tls: bool) -> KeaHttpAccess {
    let text = |map: &Map<String, Value>, key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let authentication = socket.get("authentication").and_then(Value::as_object);
    let directory = authentication
        .and_then(|a| text(a, "directory"))
        .map(PathBuf::from);
    let in_directory = |file: String| match &directory {
        Some(directory) => directory.join(file),
        None => PathBuf::from(file),
    };
    let client = authentication
        .filter(|a| {
            a.get("type")
                .and_then(Value::as_str)
                .is_none_or(|t| t == "basic")
        })
        .and_then(|a| a.get("clients"))
        .and_then(Value::as_array)
        .and_then(|clients| clients.iter().find_map(Value::as_object))
        .map(|client| KeaClient {
            user: text(client, "user"),
            user_file: text(client, "user-file").map(in_directory),
            password: text(client, "password"),
            password_file: text(client, "password-file").map(in_directory),
        });
    KeaHttpAccess {
        trust_anchor: text(socket, "trust-anchor")
            .filter(|_| tls)
            .map(PathBuf::from),
        cert_required: tls && socket.get("cert-required").and_then(Value::as_bool) != Some(false),
        client,
    }
}

/// One socket entry; None when its type is unknown or a required field missing.
fn endpoint_of(socket: &Map<String, Value>) -> Option<ControlEndpoint> {
    // Kea needs socket-type in lists; when absent, the fields tell which kind.
    let socket_type = match socket.get("socket-type") {
        Some(kind) => kind.as_str()?,
        None if socket.contains_key("socket-name") => "unix",
        None => "http",
    };
    match socket_type {
        "unix" => {
            let name = socket.get("socket-name")?.as_str()?.trim();
            (!name.is_empty()).then(|| ControlEndpoint::Unix(PathBuf::from(name)))
        }
        "http" | "https" => {
            // Kea turns TLS on whenever TLS files are set, even for "http".
            let tls = socket_type == "https"
                || ["trust-anchor", "cert-file", "key-file"].iter().any(|key| {
                    socket
                        .get(*key)
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                });
            let address = match socket.get("socket-address") {
                Some(address) => address.as_str()?,
                None => DEFAULT_HTTP_ADDRESS,
            };
            let port = match socket.get("socket-port") {
                Some(port) => port.as_u64().filter(|p| *p <= u64::from(u16::MAX))?,
                None => DEFAULT_HTTP_PORT,
            };
            let scheme = if tls { "https" } else { "http" };
            Some(ControlEndpoint::Http(format!(
                "{scheme}://{}:{port}",
                connect_host(address)
            )))
        }
        _ => None,
    }
}

/// The host to connect to for a listening address: loopback for a wildcard,
/// brackets around IPv6.
fn connect_host(address: &str) -> String {
    match address {
        "0.0.0.0" | "" => "127.0.0.1".to_string(),
        "::" => "[::1]".to_string(),
        v6 if v6.contains(':') => format!("[{v6}]"),
        v4_or_name => v4_or_name.to_string(),
    }
}

/// Where a relative `socket-name` is. Kea up to 2.6.2 opens it in its working
/// directory (the include base); 2.6.3+ and 3.x put a bare name in their
/// control socket directory. The base wins when the socket is there.
fn resolve_socket_name(name: &Path, include_base: &Path, socket_dir: &Path) -> PathBuf {
    if name.is_absolute() {
        return name.to_path_buf();
    }
    let in_base = include_base.join(name);
    let bare = name.parent().is_none_or(|dir| dir.as_os_str().is_empty());
    if bare && !exists(&in_base) {
        socket_dir.join(name)
    } else {
        in_base
    }
}

/// The user and password of a Kea basic-auth client, reading its files as
/// Kea does (a trailing newline is not part of them); the failing file and why.
fn kea_credentials(client: &KeaClient) -> Result<(String, String), (PathBuf, String)> {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map(|text| text.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| (path.to_path_buf(), e.to_string()))
    };
    let user = match (&client.user, &client.user_file) {
        (Some(user), _) => Some(user.clone()),
        (None, Some(file)) => Some(read(file)?),
        (None, None) => None,
    };
    let password = match (&client.password, &client.password_file) {
        (Some(password), _) => Some(password.clone()),
        (None, Some(file)) => Some(read(file)?),
        (None, None) => None,
    };
    match (user, password) {
        (Some(user), password) => Ok((user, password.unwrap_or_default())),
        // Without a user, the password file holds the whole secret, user:password.
        (None, Some(secret)) => match secret.split_once(':') {
            Some((user, password)) => Ok((user.to_string(), password.to_string())),
            None => Err((
                client.password_file.clone().unwrap_or_default(),
                "the client has no user, and the file holds no user:password".to_string(),
            )),
        },
        (None, None) => Err((
            PathBuf::new(),
            "the first client of authentication.clients has neither user nor password-file"
                .to_string(),
        )),
    }
}

fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// The directory Kea 2.6.3+/3.x keeps unix sockets in (KEA_CONTROL_SOCKET_DIR overrides).
fn kea_socket_dir() -> PathBuf {
    std::env::var_os("KEA_CONTROL_SOCKET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(KEA_CONTROL_SOCKET_DIR))
}

impl ServiceConfig {
    /// The control channel: control_socket / control_url when set; else read
    /// from the Kea config file (expanded with the include base).
    pub fn control_channel(&self) -> Result<ControlChannel, ConfigError> {
        let (endpoint, access) = match (&self.control_socket, &self.control_url) {
            (Some(socket), _) => (ControlEndpoint::Unix(socket.clone()), None),
            (None, Some(url)) => (ControlEndpoint::Http(url.clone()), None),
            (None, None) => {
                let (endpoint, access) = self.endpoint_from_kea_config()?;
                (endpoint, Some(access))
            }
        };
        match endpoint {
            ControlEndpoint::Unix(path) => {
                Ok(ControlChannel::Unix(UnixControl::new(path, self.timeout)))
            }
            ControlEndpoint::Http(url) => {
                HttpControl::new(&url, &self.http_options_for(&url, access)?)
                    .map(ControlChannel::Http)
                    .map_err(|source| ConfigError::HttpControl {
                        service: self.service,
                        url,
                        agent_config: self.agent_config.clone(),
                        source: Box::new(source),
                    })
            }
        }
    }

    /// The HTTP options for `url`: agent.toml's, and for a socket read from
    /// Kea's config, what agent.toml leaves unset taken from that socket (its
    /// trust-anchor as the CA, its first basic-auth client), as Stork's agent
    /// does: the agent runs as Kea's user and reads what Kea reads.
    fn http_options_for(
        &self,
        url: &str,
        access: Option<KeaHttpAccess>,
    ) -> Result<HttpOptions, ConfigError> {
        let mut options = self.http_options();
        let Some(access) = access else {
            return Ok(options);
        };
        if options.ca_file.is_none() {
            options.ca_file = access.trust_anchor;
        }
        if access.cert_required && options.client_cert.is_none() {
            return Err(ConfigError::KeaWantsClientCert {
                service: self.service,
                config_file: self.config_file.clone(),
                url: url.to_string(),
                agent_config: self.agent_config.clone(),
            });
        }
        if options.user.is_none()
            && let Some(client) = &access.client
        {
            let (user, password) =
                kea_credentials(client).map_err(|(path, problem)| ConfigError::KeaAuthFile {
                    service: self.service,
                    path,
                    problem,
                    agent_config: self.agent_config.clone(),
                })?;
            options.user = Some(user);
            options.password = Some(Password::new(password));
            options.password_file = None;
        }
        Ok(options)
    }

    /// Reads the control endpoint out of the Kea config file, resolving a
    /// relative socket name; with what an HTTP socket asks of clients.
    fn endpoint_from_kea_config(&self) -> Result<(ControlEndpoint, KeaHttpAccess), ConfigError> {
        let include_base = self.resolve_include_base();
        let expanded =
            expand_file(&self.config_file, &include_base, Style::Compact).map_err(|source| {
                ConfigError::KeaConfig {
                    service: self.service,
                    source: Box::new(source),
                }
            })?;
        let value = control_view(&expanded.json, self.service).map_err(|source| {
            ConfigError::KeaConfigJson {
                path: self.config_file.clone(),
                source,
            }
        })?;
        let endpoint = control_endpoint_from_config(&value, self.service).ok_or_else(|| {
            ConfigError::NoControlSocket {
                config_file: self.config_file.clone(),
                service: self.service,
                agent_config: self.agent_config.clone(),
            }
        })?;
        let endpoint = match endpoint {
            ControlEndpoint::Unix(name) => {
                ControlEndpoint::Unix(resolve_socket_name(&name, &include_base, &kea_socket_dir()))
            }
            http => http,
        };
        let mut access = http_access_from_config(&value, self.service);
        // Kea opens relative files from its working directory: the include base.
        let anchor = |path: PathBuf| {
            if path.is_absolute() {
                path
            } else {
                include_base.join(path)
            }
        };
        access.trust_anchor = access.trust_anchor.map(anchor);
        if let Some(client) = &mut access.client {
            client.user_file = client.user_file.take().map(anchor);
            client.password_file = client.password_file.take().map(anchor);
        }
        tracing::debug!(service = %self.service, file = %self.config_file.display(), ?endpoint, ?access, "control channel read from Kea's config");
        Ok((endpoint, access))
    }
}

/// The part of an expanded Kea config that names the service's control
/// sockets, as a small value tree (`{"Dhcp4": {"control-socket": ...}}`): a
/// config of tens of MB is never turned into one whole tree, which would
/// cost the agent many times the file's size in memory.
fn control_view(json: &str, service: Service) -> Result<Value, serde_json::Error> {
    type Members<'a> = indexmap::IndexMap<String, &'a serde_json::value::RawValue>;
    let key = service.config_key();
    let top: Members = serde_json::from_str(json)?;
    let mut view = Map::new();
    if let Some(body) = top.get(key) {
        let mut section = Map::new();
        // A service entry that is not a map has no control socket.
        if let Ok(members) = serde_json::from_str::<Members>(body.get()) {
            for name in ["control-socket", "control-sockets"] {
                if let Some(raw) = members.get(name) {
                    section.insert(name.to_string(), serde_json::from_str(raw.get())?);
                }
            }
        }
        view.insert(key.to_string(), Value::Object(section));
    }
    Ok(Value::Object(view))
}

#[cfg(test)]
mod tests {
    use super::{
        KeaClient, control_view, http_access_from_config, kea_credentials, resolve_socket_name,
    };
    use crate::kea::Service;
    use serde_json::json;
    use std::path::{Path, PathBuf};

    #[test]
    fn what_a_kea_3_https_socket_asks_of_clients() {
        let config =
            json!({"Dhcp4": {"control-sockets": [{"socket-type": "unix", "socket-name": "s"}]}});
        let access = http_access_from_config(&config, Service::Dhcp4);
        assert_eq!(
            (access.trust_anchor, access.cert_required, access.client),
            (None, false, None)
        );

        let config = json!({"Dhcp4": {"control-sockets": [{"socket-type": "https", "socket-port": 8004,
            "trust-anchor": "/etc/kea/ca.pem", "cert-file": "/etc/kea/c.pem", "key-file": "/etc/kea/k.pem",
            "authentication": {"type": "basic", "realm": "kea", "directory": "/etc/kea",
                "clients": [{"password-file": "agent-secret"}, {"user": "other"}]}}]}});
        let access = http_access_from_config(&config, Service::Dhcp4);
        assert_eq!(access.trust_anchor, Some(PathBuf::from("/etc/kea/ca.pem")));
        assert!(access.cert_required, "Kea's default");
        let client = access.client.expect("first client");
        assert_eq!(
            client.password_file,
            Some(PathBuf::from("/etc/kea/agent-secret"))
        );
        assert_eq!(client.user, None);

        let config = json!({"Dhcp4": {"control-socket": {"socket-type": "http",
            "authentication": {"clients": [{"user": "admin", "password": "1234"}]}}}});
        let access = http_access_from_config(&config, Service::Dhcp4);
        assert!(
            !access.cert_required && access.trust_anchor.is_none(),
            "plain HTTP"
        );
        let client = access.client.expect("client");
        assert_eq!(
            (client.user.as_deref(), client.password.as_deref()),
            (Some("admin"), Some("1234"))
        );
        assert!(
            !format!("{client:?}").contains("1234"),
            "no password in logs"
        );

        let config = json!({"Dhcp4": {"control-sockets": [{"socket-type": "https",
            "trust-anchor": "/ca.pem", "cert-required": false}]}});
        assert!(!http_access_from_config(&config, Service::Dhcp4).cert_required);
    }

    #[test]
    fn kea_client_credentials_read_as_kea_reads_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        let whole = KeaClient {
            password_file: Some(write("secret", "agent:s3cr:et\n")),
            ..KeaClient::default()
        };
        assert_eq!(
            kea_credentials(&whole),
            Ok(("agent".into(), "s3cr:et".into()))
        );
        let split = KeaClient {
            user_file: Some(write("user", "agent\n")),
            password_file: Some(write("password", "pw")),
            ..KeaClient::default()
        };
        assert_eq!(kea_credentials(&split), Ok(("agent".into(), "pw".into())));
        let no_colon = KeaClient {
            password_file: Some(write("bare", "pw")),
            ..KeaClient::default()
        };
        assert!(
            kea_credentials(&no_colon)
                .expect_err("no user")
                .1
                .contains("user:password")
        );
        let missing = KeaClient {
            user: Some("agent".into()),
            password_file: Some(dir.path().join("absent")),
            ..KeaClient::default()
        };
        assert_eq!(
            kea_credentials(&missing).expect_err("absent").0,
            dir.path().join("absent")
        );
    }

    #[test]
    fn control_view_keeps_only_the_control_sockets() {
        let json = r#"{"Dhcp4": {"subnet4": [{"id": 1}], "control-socket": {"socket-name": "s"},
            "control-sockets": [{"socket-type": "http"}]}, "Dhcp6": {"control-socket": {}}}"#;
        let view = control_view(json, Service::Dhcp4).expect("view");
        assert_eq!(
            view,
            serde_json::json!({"Dhcp4": {"control-socket": {"socket-name": "s"},
                "control-sockets": [{"socket-type": "http"}]}})
        );
        assert_eq!(
            control_view(r#"{"Dhcp4": 5}"#, Service::Dhcp4).expect("view"),
            serde_json::json!({"Dhcp4": {}})
        );
        assert_eq!(
            control_view(r#"{"Dhcp6": {}}"#, Service::Dhcp4).expect("view"),
            serde_json::json!({})
        );
        assert!(control_view("[1]", Service::Dhcp4).is_err());
    }

    #[test]
    fn relative_socket_names_resolve_against_base_or_kea_socket_dir() {
        let base = tempfile::tempdir().expect("tempdir");
        std::fs::write(base.path().join("present-sock"), "").expect("write");
        let run = Path::new("/run/kea");
        let cases: [(&str, PathBuf); 4] = [
            ("/abs/sock", PathBuf::from("/abs/sock")),
            ("present-sock", base.path().join("present-sock")),
            ("absent-sock", run.join("absent-sock")),
            ("sub/sock", base.path().join("sub/sock")),
        ];
        for (name, expected) in cases {
            assert_eq!(
                resolve_socket_name(Path::new(name), base.path(), run),
                expected,
                "{name}"
            );
        }
    }
}
