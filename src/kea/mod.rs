//! Talking to Kea: the commands, their replies, and the control transports
//! (unix control socket, kea-ctrl-agent, Kea 2.7+/3.x direct HTTP sockets).

pub mod accounts;
mod channel;
mod error;
pub mod ha;
mod http;
mod reply;
pub mod sockets;
mod unix;
mod version;

pub use channel::{ConfigHash, ControlChannel, InMemoryConfig, Status};
pub use error::KeaError;
pub use http::{HttpControl, HttpOptions, Password};
pub use reply::{BadReply, Outcome, Reply, strip_hash};
pub use unix::UnixControl;
pub use version::{KeaVersion, OLDEST_SUPPORTED};

use serde_json::value::RawValue;
use std::fmt;
use std::str::FromStr;

/// A Kea daemon whose configuration the agent manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Dhcp4,
    Dhcp6,
    D2,
}

impl Service {
    /// Name used in kea-ctrl-agent's `service` list and in the agent's config.
    pub fn name(self) -> &'static str {
        match self {
            Service::Dhcp4 => "dhcp4",
            Service::Dhcp6 => "dhcp6",
            Service::D2 => "d2",
        }
    }

    /// Top-level key of the service's config document (`{"Dhcp4": {...}}`).
    pub fn config_key(self) -> &'static str {
        match self {
            Service::Dhcp4 => "Dhcp4",
            Service::Dhcp6 => "Dhcp6",
            Service::D2 => "DhcpDdns",
        }
    }

    /// The daemon binary, which also checks files with `-t`.
    pub fn daemon_binary(self) -> &'static str {
        match self {
            Service::Dhcp4 => "kea-dhcp4",
            Service::Dhcp6 => "kea-dhcp6",
            Service::D2 => "kea-dhcp-ddns",
        }
    }

    /// The stock config file of Debian's and ISC's packages.
    pub fn default_config_file(self) -> &'static str {
        match self {
            Service::Dhcp4 => "/etc/kea/kea-dhcp4.conf",
            Service::Dhcp6 => "/etc/kea/kea-dhcp6.conf",
            Service::D2 => "/etc/kea/kea-dhcp-ddns.conf",
        }
    }

    /// Every service, in the order the agent reports them.
    pub const ALL: [Service; 3] = [Service::Dhcp4, Service::Dhcp6, Service::D2];
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Service {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dhcp4" => Ok(Service::Dhcp4),
            "dhcp6" => Ok(Service::Dhcp6),
            "d2" | "ddns" | "dhcp-ddns" => Ok(Service::D2),
            other => Err(format!(
                "unknown Kea service '{other}': expected dhcp4, dhcp6 or d2"
            )),
        }
    }
}

/// One Kea control command with its arguments.
#[derive(Debug, Clone)]
pub enum Command {
    VersionGet,
    StatusGet,
    ListCommands,
    ConfigGet,
    ConfigHashGet,
    /// `config-test` with a whole `{"Dhcp4": {...}}` document.
    ConfigTest(Box<RawValue>),
    /// `config-set` with a whole `{"Dhcp4": {...}}` document (a rollback).
    ConfigSet(Box<RawValue>),
    ConfigReload,
    /// `ha-heartbeat`: an HA server's own state (what its partner asks).
    HaHeartbeat,
    /// `config-write`, to the given file or (None) to the `-c` file.
    ConfigWrite(Option<String>),
    /// Any other command, sent as given.
    Raw {
        name: String,
        arguments: Option<Box<RawValue>>,
    },
}

impl Command {
    /// Kea's name for the command.
    pub fn name(&self) -> &str {
        match self {
            Command::VersionGet => "version-get",
            Command::StatusGet => "status-get",
            Command::ListCommands => "list-commands",
            Command::ConfigGet => "config-get",
            Command::ConfigHashGet => "config-hash-get",
            Command::ConfigTest(_) => "config-test",
            Command::ConfigSet(_) => "config-set",
            Command::ConfigReload => "config-reload",
            Command::HaHeartbeat => "ha-heartbeat",
            Command::ConfigWrite(_) => "config-write",
            Command::Raw { name, .. } => name,
        }
    }

    /// Builds a command from its name, mapping known names to typed commands.
    pub fn from_name(name: &str, arguments: Option<Box<RawValue>>) -> Command {
        match (name, arguments) {
            ("version-get", None) => Command::VersionGet,
            ("status-get", None) => Command::StatusGet,
            ("list-commands", None) => Command::ListCommands,
            ("config-get", None) => Command::ConfigGet,
            ("config-hash-get", None) => Command::ConfigHashGet,
            ("config-reload", None) => Command::ConfigReload,
            ("ha-heartbeat", None) => Command::HaHeartbeat,
            ("config-write", None) => Command::ConfigWrite(None),
            ("config-test", Some(args)) => Command::ConfigTest(args),
            ("config-set", Some(args)) => Command::ConfigSet(args),
            (name, arguments) => Command::Raw {
                name: name.to_string(),
                arguments,
            },
        }
    }

    /// Whether sending it twice is harmless, so a garbled reply may be retried.
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            Command::VersionGet
                | Command::StatusGet
                | Command::ListCommands
                | Command::ConfigGet
                | Command::ConfigHashGet
                | Command::ConfigTest(_)
                | Command::HaHeartbeat
        )
    }

    /// The request body: `{"command": ..., "service": [...], "arguments": ...}`.
    pub fn to_request(&self, service: Option<Service>) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Request<'a> {
            command: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            service: Option<[&'static str; 1]>,
            #[serde(skip_serializing_if = "Option::is_none")]
            arguments: Option<&'a RawValue>,
        }
        let write_args;
        let arguments = match self {
            Command::ConfigTest(args) | Command::ConfigSet(args) => Some(&**args),
            Command::Raw { arguments, .. } => arguments.as_deref(),
            Command::ConfigWrite(Some(file)) => {
                write_args =
                    serde_json::value::to_raw_value(&serde_json::json!({ "filename": file })).ok();
                write_args.as_deref()
            }
            _ => None,
        };
        let request = Request {
            command: self.name(),
            service: service.map(|s| [s.name()]),
            arguments,
        };
        // Serializing strings and raw JSON into a Vec cannot fail.
        serde_json::to_vec(&request).unwrap_or_default()
    }
}
