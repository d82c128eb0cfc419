//! Finding a service's control channel: from the agent config, else from the
//! `control-socket` / `control-sockets` of Kea's own config file.

use super::{ConfigError, ServiceConfig};
use crate::dialect::{Style, expand_file};
use crate::kea::{ControlChannel, HttpControl, Service, UnixControl};
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

/// The control endpoint in a Kea config document (`{"Dhcp4": {...}}`):
/// `control-socket`, else the first usable entry of Kea 3.x's `control-sockets`.
pub fn control_endpoint_from_config(value: &Value, service: Service) -> Option<ControlEndpoint> {
    let section = value.get(service.config_key())?;
    if let Some(endpoint) = section
        .get("control-socket")
        .and_then(Value::as_object)
        .and_then(endpoint_of)
    {
        return Some(endpoint);
    }
    section
        .get("control-sockets")?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .find_map(endpoint_of)
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
        let endpoint = match (&self.control_socket, &self.control_url) {
            (Some(socket), _) => ControlEndpoint::Unix(socket.clone()),
            (None, Some(url)) => ControlEndpoint::Http(url.clone()),
            (None, None) => self.endpoint_from_kea_config()?,
        };
        match endpoint {
            ControlEndpoint::Unix(path) => {
                Ok(ControlChannel::Unix(UnixControl::new(path, self.timeout)))
            }
            ControlEndpoint::Http(url) => HttpControl::new(&url, &self.http_options())
                .map(ControlChannel::Http)
                .map_err(|source| ConfigError::HttpControl {
                    service: self.service,
                    url,
                    agent_config: self.agent_config.clone(),
                    source: Box::new(source),
                }),
        }
    }

    /// Reads the control endpoint out of the Kea config file, resolving a
    /// relative socket name.
    fn endpoint_from_kea_config(&self) -> Result<ControlEndpoint, ConfigError> {
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
        tracing::debug!(service = %self.service, file = %self.config_file.display(), ?endpoint, "control channel read from Kea's config");
        Ok(endpoint)
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
    use super::{control_view, resolve_socket_name};
    use crate::kea::Service;
    use std::path::{Path, PathBuf};

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
