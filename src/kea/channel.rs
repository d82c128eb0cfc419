//! One way to reach a Kea daemon, whatever the transport, and the typed
//! commands the agent uses.

use super::error::KeaError;
use super::ha::{Peer, Relationship};
use super::reply::{Outcome, Reply, strip_hash};
use super::version::KeaVersion;
use super::{Command, HttpControl, HttpOptions, Password, Service, UnixControl};
use serde_json::value::RawValue;
use std::time::Duration;

/// How many times a read-only command is sent again after a garbled reply:
/// Kea silently truncates replies to clients it thinks stalled.
const READ_ONLY_ATTEMPTS: usize = 3;

/// A Kea daemon's control channel.
#[derive(Debug, Clone)]
pub enum ControlChannel {
    Unix(UnixControl),
    Http(HttpControl),
}

/// status-get's answer, the fields the agent reads plus the rest raw.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Status {
    pub pid: Option<u32>,
    /// Seconds since the daemon started.
    pub uptime: Option<i64>,
    /// Seconds since the last successful (re)configuration.
    pub reload: Option<i64>,
    #[serde(default)]
    pub sockets: Option<serde_json::Value>,
    #[serde(rename = "high-availability", default)]
    pub high_availability: Option<serde_json::Value>,
}

/// config-get's answer: the in-memory config without Kea's `hash` key, and
/// that hash (Kea 2.4+).
#[derive(Debug)]
pub struct InMemoryConfig {
    pub config: Box<RawValue>,
    pub hash: Option<String>,
}

/// config-hash-get's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigHash {
    /// SHA-256 over Kea's own serialization (opaque).
    Hash(String),
    /// Kea 2.2 and older do not know the command: fall back to config-get.
    Unsupported,
}

impl ControlChannel {
    /// How this server's HA reaches `peer` of `relationship` (its URL, and
    /// the credentials and TLS files of the HA config): the agent asks the
    /// partner's state the way the partner's HA would be asked.
    pub fn to_ha_peer(
        service: Service,
        peer: &Peer,
        relationship: &Relationship,
        timeout: Duration,
    ) -> Result<ControlChannel, KeaError> {
        let options = HttpOptions {
            service: Some(service),
            user: peer.user.clone(),
            password_file: peer.password_file.clone(),
            password: peer.password.clone().map(Password::new),
            ca_file: relationship.trust_anchor.clone(),
            client_cert: relationship.cert_file.clone(),
            client_key: relationship.key_file.clone(),
            timeout,
        };
        Ok(ControlChannel::Http(HttpControl::new(&peer.url, &options)?))
    }

    /// The socket path or URL, for messages.
    pub fn endpoint(&self) -> String {
        match self {
            ControlChannel::Unix(unix) => unix.path().display().to_string(),
            ControlChannel::Http(http) => http.url().to_string(),
        }
    }

    /// The uid owning Kea's unix control socket (Kea made it), when there is one.
    pub fn socket_owner(&self) -> Option<u32> {
        use std::os::unix::fs::MetadataExt;
        match self {
            ControlChannel::Unix(unix) => std::fs::metadata(unix.path()).ok().map(|m| m.uid()),
            ControlChannel::Http(_) => None,
        }
    }

    /// Sends any command and returns Kea's reply, whatever its result code.
    pub async fn send(&self, command: &Command) -> Result<Reply, KeaError> {
        let attempts = if command.is_read_only() {
            READ_ONLY_ATTEMPTS
        } else {
            1
        };
        let mut attempt = 1;
        loop {
            let body = match self {
                ControlChannel::Unix(unix) => unix.exchange(command).await?,
                ControlChannel::Http(http) => http.exchange(command).await?,
            };
            let len = body.len();
            match Reply::parse(body) {
                Ok(reply) => return Ok(reply),
                Err(why) if attempt < attempts => {
                    tracing::warn!(endpoint = %self.endpoint(), command = command.name(), %why, "garbled reply from Kea, asking again");
                    attempt += 1;
                }
                Err(why) => {
                    return Err(KeaError::BadReply {
                        endpoint: self.endpoint(),
                        command: command.name().to_string(),
                        why: format!("{len} bytes that are {why}"),
                    });
                }
            }
        }
    }

    /// Sends a command and turns any failure result into `KeaError::Refused`.
    pub async fn send_expecting_success(&self, command: &Command) -> Result<Reply, KeaError> {
        let reply = self.send(command).await?;
        if reply.outcome.is_ok() {
            Ok(reply)
        } else {
            Err(KeaError::Refused {
                endpoint: self.endpoint(),
                command: command.name().to_string(),
                outcome: reply.outcome,
                text: reply.text,
            })
        }
    }

    /// Kea's version, e.g. "2.2.0"; a Kea older than the agent supports is
    /// an error that says so (a text that is no version passes as it is).
    pub async fn version_get(&self) -> Result<String, KeaError> {
        let reply = self.send_expecting_success(&Command::VersionGet).await?;
        match KeaVersion::parse(&reply.text) {
            Some(version) if !version.supported() => Err(KeaError::TooOld {
                endpoint: self.endpoint(),
                version: reply.text,
            }),
            _ => Ok(reply.text),
        }
    }

    /// The daemon's pid, uptime and seconds since the last reconfiguration.
    pub async fn status_get(&self) -> Result<Status, KeaError> {
        let reply = self.send_expecting_success(&Command::StatusGet).await?;
        self.arguments_as(&Command::StatusGet, &reply)
    }

    /// The commands this daemon (with its hooks) accepts.
    pub async fn list_commands(&self) -> Result<Vec<String>, KeaError> {
        let reply = self.send_expecting_success(&Command::ListCommands).await?;
        self.arguments_as(&Command::ListCommands, &reply)
    }

    /// The in-memory config, `hash` split off so it can be sent back as is.
    pub async fn config_get(&self) -> Result<InMemoryConfig, KeaError> {
        let reply = self.send_expecting_success(&Command::ConfigGet).await?;
        let arguments = reply
            .arguments
            .ok_or_else(|| self.bad_reply(&Command::ConfigGet, "a reply without arguments"))?;
        let (config, hash) = strip_hash(arguments).map_err(|e| {
            self.bad_reply(
                &Command::ConfigGet,
                &format!("arguments that are not a map ({e})"),
            )
        })?;
        Ok(InMemoryConfig { config, hash })
    }

    /// The hash of the in-memory config, or `Unsupported` on Kea 2.2.
    pub async fn config_hash_get(&self) -> Result<ConfigHash, KeaError> {
        let reply = self.send(&Command::ConfigHashGet).await?;
        match reply.outcome {
            Outcome::Unsupported => Ok(ConfigHash::Unsupported),
            Outcome::Success => {
                #[derive(serde::Deserialize)]
                struct HashArgs {
                    hash: String,
                }
                let args: HashArgs = self.arguments_as(&Command::ConfigHashGet, &reply)?;
                Ok(ConfigHash::Hash(args.hash))
            }
            outcome => Err(KeaError::Refused {
                endpoint: self.endpoint(),
                command: Command::ConfigHashGet.name().to_string(),
                outcome,
                text: reply.text,
            }),
        }
    }

    /// The time stamp of the newest sample of statistic `name`, as Kea
    /// wrote it (`"2026-12-08 00:04:15.558764"`); None when Kea has no such
    /// statistic.
    pub async fn statistic_stamp(&self, name: &str) -> Result<Option<String>, KeaError> {
        let command = Command::Raw {
            name: "statistic-get".to_string(),
            arguments: serde_json::value::to_raw_value(&serde_json::json!({ "name": name })).ok(),
        };
        let reply = self.send_expecting_success(&command).await?;
        // {"declined-addresses": [[0, "2026-12-08 00:04:15.558764"], ...]}, newest first.
        let samples: std::collections::HashMap<String, Vec<(serde_json::Value, String)>> =
            self.arguments_as(&command, &reply)?;
        Ok(samples
            .get(name)
            .and_then(|samples| samples.first())
            .map(|(_, stamp)| stamp.clone()))
    }

    /// Asks Kea whether `document` (`{"Dhcp4": {...}}`) would load. The reply
    /// is returned whatever its result: a refusal is Kea's verdict, not an error.
    pub async fn config_test(&self, document: Box<RawValue>) -> Result<Reply, KeaError> {
        self.send(&Command::ConfigTest(document)).await
    }

    /// Makes Kea run `document` (`{"Dhcp4": {...}}`, config-get's arguments
    /// without `hash`): how a failed reload is rolled back.
    pub async fn config_set(&self, document: Box<RawValue>) -> Result<Reply, KeaError> {
        self.send_expecting_success(&Command::ConfigSet(document))
            .await
    }

    /// The HA state of the server this channel reaches (`ha-heartbeat`, the
    /// command HA partners exchange).
    pub async fn ha_heartbeat(&self) -> Result<String, KeaError> {
        let reply = self.send_expecting_success(&Command::HaHeartbeat).await?;
        let arguments: serde_json::Value = self.arguments_as(&Command::HaHeartbeat, &reply)?;
        super::ha::heartbeat_state(&arguments)
            .ok_or_else(|| self.bad_reply(&Command::HaHeartbeat, "arguments without a state"))
    }

    /// Makes Kea re-read its `-c` file.
    pub async fn config_reload(&self) -> Result<Reply, KeaError> {
        self.send_expecting_success(&Command::ConfigReload).await
    }

    /// Makes Kea write its in-memory config to `file` (None: its `-c` file).
    pub async fn config_write(&self, file: Option<String>) -> Result<Reply, KeaError> {
        self.send_expecting_success(&Command::ConfigWrite(file))
            .await
    }

    fn arguments_as<T: serde::de::DeserializeOwned>(
        &self,
        command: &Command,
        reply: &Reply,
    ) -> Result<T, KeaError> {
        let arguments = reply
            .arguments
            .as_deref()
            .ok_or_else(|| self.bad_reply(command, "a reply without arguments"))?;
        serde_json::from_str(arguments.get()).map_err(|e| {
            self.bad_reply(command, &format!("arguments of an unexpected shape ({e})"))
        })
    }

    fn bad_reply(&self, command: &Command, why: &str) -> KeaError {
        KeaError::BadReply {
            endpoint: self.endpoint(),
            command: command.name().to_string(),
            why: why.to_string(),
        }
    }
}
