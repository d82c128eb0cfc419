//! The agent's own config: which Kea services to manage, where their config
//! files and control channels are, and how patient to be.
//!
//! Read from a TOML file (`--config`, else /etc/kea-sync-agent/agent.toml),
//! or, without one, discovered from the Kea config files present in /etc/kea.
//! Parsing and validation (`file.rs`) are pure; the IO at the edges is reading
//! the file, looking at /etc/kea, scanning /proc for Kea's working directory
//! (`include_base.rs`) and reading a control socket out of Kea's config
//! (`control.rs`).

mod control;
mod diff;
mod error;
mod file;
mod include_base;

#[cfg(test)]
mod tests;

pub use control::{ControlEndpoint, control_endpoint_from_config};
pub use diff::{Reconfiguration, ServiceChange, reconfiguration};
pub use error::{ConfigError, ConfigLocation};

use crate::kea::{HttpOptions, Service};
use crate::upstream::{HookConfig, OutboxLimits, UpstreamConfig};
use crate::validate::Thoroughness;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The agent config read when `--config` is not given.
pub const DEFAULT_AGENT_CONFIG: &str = "/etc/kea-sync-agent/agent.toml";
/// Where Kea's packages put its config files; searched when there is no agent config.
pub const DEFAULT_ETC_KEA: &str = "/etc/kea";
/// Default of `[agent] state_dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/kea-sync-agent";
/// Default of `[agent] settle_ms`.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(50);
/// Largest `settle_ms` accepted: a longer wait would look like the agent hung.
pub const MAX_SETTLE: Duration = Duration::from_secs(60);
/// Default of `[agent] check_interval_s`.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// Default of `[[service]] timeout_s`: reloads of large configs take seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The whole agent config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    pub agent: AgentSettings,
    pub services: Vec<ServiceConfig>,
    /// Where it came from, for messages.
    pub source: ConfigSource,
    /// Where events go over HTTP(S); None: kept locally only.
    pub upstream: Option<UpstreamConfig>,
    /// Commands that receive every event too.
    pub hooks: Vec<HookConfig>,
    /// Bounds of the outbox.
    pub outbox: OutboxLimits,
}

/// The `[agent]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// Where the agent keeps what it must remember across restarts.
    pub state_dir: PathBuf,
    /// Quiet time after the last file event before acting.
    pub settle: Duration,
    /// Safety-net re-check of every service; None when switched off (0).
    pub check_interval: Option<Duration>,
    /// The admin API's unix socket (`status`, `outbox`, `apply` beside a daemon).
    pub admin_socket: PathBuf,
    /// The group the admin socket is given (mode 0660); None: the agent's own.
    pub admin_group: Option<String>,
    /// Where the read-only admin API (status, events, metrics) also listens
    /// on TCP; None: nowhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How log lines are written to stderr.
    pub log_format: LogFormat,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            settle: DEFAULT_SETTLE,
            check_interval: Some(DEFAULT_CHECK_INTERVAL),
            admin_socket: PathBuf::from(super::admin::DEFAULT_ADMIN_SOCKET),
            admin_group: None,
            metrics_listen: None,
            log_format: LogFormat::default(),
        }
    }
}

/// `[agent] log_format` and `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per record (journald captures stderr).
    #[default]
    Text,
    /// One JSON object per record, for log shippers.
    Json,
}

/// Where an [`AgentConfig`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// Read from this agent config file.
    File(PathBuf),
    /// No agent config file: services found in /etc/kea, defaults for the rest.
    Discovered,
}

impl ConfigSource {
    /// Where an operator would set a service's options, for advice in messages.
    pub fn where_to_set(&self) -> String {
        match self {
            ConfigSource::File(path) => path.display().to_string(),
            ConfigSource::Discovered => {
                format!("an agent config ({DEFAULT_AGENT_CONFIG} or --config FILE)")
            }
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(path) => write!(f, "{}", path.display()),
            ConfigSource::Discovered => f.write_str("services discovered in /etc/kea"),
        }
    }
}

/// One `[[service]]` table: a Kea daemon the agent manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub service: Service,
    /// The file Kea was started with (`-c`), which the agent watches.
    pub config_file: PathBuf,
    /// Kea's unix control socket, when not read from the config file.
    pub control_socket: Option<PathBuf>,
    /// kea-ctrl-agent or a Kea 2.7+/3.x HTTP(S) control socket.
    pub control_url: Option<String>,
    /// Credentials and TLS for HTTP(S) control, from the agent config or Kea's.
    pub http: HttpSettings,
    /// The binary that checks a file (`-t`); None: the daemon found in PATH.
    pub validator: Option<PathBuf>,
    /// Directory relative `<?include?>` paths resolve against; None: find out.
    pub include_base: Option<PathBuf>,
    /// Bounds one exchange with Kea.
    pub timeout: Duration,
    /// How thoroughly a file is checked before a reload (`validation`).
    pub validation: Thoroughness,
    /// What to do with changes Kea holds that are in no file (`runtime_changes`).
    pub runtime_changes: RuntimeChanges,
    /// How a server of an HA pair is reloaded (`[ha]`, the same for every service).
    pub ha: HaSettings,
    /// The agent config this service was read from, for advice in messages.
    pub agent_config: ConfigSource,
}

/// What an edit does to changes made through Kea's API (config-set,
/// subnet_cmds, host_cmds) that were never config-written: a reload drops
/// them. Either way they go upstream first, as a `drift` carrying them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeChanges {
    /// Reload the file anyway (the central keeps the runtime config).
    #[default]
    Reload,
    /// Refuse the edit until someone config-writes Kea's config.
    Keep,
}

/// Default of `[ha] delay_ms`: how long a server that is not the primary
/// lets the primary go first.
pub const DEFAULT_HA_DELAY: Duration = Duration::from_secs(2);
/// Default of `[ha] max_hold_s`.
pub const DEFAULT_HA_MAX_HOLD: Duration = Duration::from_secs(300);
/// Default of `[ha] follow_timeout_s`: Kea's own `sync-timeout` is 60 s.
pub const DEFAULT_HA_FOLLOW: Duration = Duration::from_secs(60);
/// Largest `[ha] follow_timeout_s`: the daemon does nothing else while it
/// follows, and systemd's watchdog (120 s) must hear from it.
pub const MAX_HA_FOLLOW: Duration = Duration::from_secs(90);

/// The `[ha]` table: how the server of an HA pair is reloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaSettings {
    /// What an edit on a server that is not the primary does.
    pub secondary_edits: SecondaryEdits,
    /// A server that is not the primary waits this long after an edit
    /// before it looks at the pair (the primary, edited in the same second,
    /// reloads first).
    pub delay: Duration,
    /// How long a reload may be held for the pair to be normal again.
    pub max_hold: Duration,
    /// What to do once held that long.
    pub after_max_hold: AfterMaxHold,
    /// How long the local HA state is followed after a reload.
    pub follow_timeout: Duration,
}

impl Default for HaSettings {
    fn default() -> Self {
        HaSettings {
            secondary_edits: SecondaryEdits::default(),
            delay: DEFAULT_HA_DELAY,
            max_hold: DEFAULT_HA_MAX_HOLD,
            after_max_hold: AfterMaxHold::default(),
            follow_timeout: DEFAULT_HA_FOLLOW,
        }
    }
}

/// `[ha] secondary_edits`: an edit of a server that is not the primary. A
/// central that treats the primary as the truth for the pair (Micetro)
/// overwrites such edits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecondaryEdits {
    /// Apply it, say nothing.
    Apply,
    /// Apply it, with a warning on the event.
    #[default]
    Warn,
    /// Refuse it: edit the primary's file.
    Refuse,
}

/// `[ha] after_max_hold`: a reload held `max_hold_s` for the pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterMaxHold {
    /// Keep waiting (said loudly once): reloading now could take the last
    /// serving server of the pair out too.
    #[default]
    Wait,
    /// Reload anyway (said loudly).
    Reload,
}

/// HTTP(S) control options of a `[[service]]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpSettings {
    /// Basic-auth user; always together with `password_file`.
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    /// PEM bundle to trust instead of the web roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for Kea's `cert-required`.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl ServiceConfig {
    /// The service with every option at its default (stock config file).
    pub fn new(service: Service) -> ServiceConfig {
        ServiceConfig {
            service,
            config_file: PathBuf::from(service.default_config_file()),
            control_socket: None,
            control_url: None,
            http: HttpSettings::default(),
            validator: None,
            include_base: None,
            timeout: DEFAULT_TIMEOUT,
            validation: Thoroughness::default(),
            runtime_changes: RuntimeChanges::default(),
            ha: HaSettings::default(),
            agent_config: ConfigSource::Discovered,
        }
    }

    /// The options HttpControl needs, whatever the URL's origin.
    pub fn http_options(&self) -> HttpOptions {
        HttpOptions {
            // kea-ctrl-agent needs it; Kea's own HTTP sockets ignore it.
            service: Some(self.service),
            user: self.http.user.clone(),
            password_file: self.http.password_file.clone(),
            password: None,
            ca_file: self.http.ca_file.clone(),
            client_cert: self.http.client_cert.clone(),
            client_key: self.http.client_key.clone(),
            timeout: self.timeout,
        }
    }
}

impl AgentConfig {
    /// Reads, parses and validates an agent config file.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        AgentConfig::parse(&text, path)
    }

    /// Parses and validates agent config text; `path` is named in errors.
    pub fn parse(text: &str, path: &Path) -> Result<AgentConfig, ConfigError> {
        file::parse(text, path)
    }

    /// No config file: every service whose default config file exists (under
    /// `etc_kea`, normally /etc/kea), with defaults.
    pub fn discover(etc_kea: &Path) -> Result<AgentConfig, ConfigError> {
        let mut looked_for = Vec::new();
        let mut services = Vec::new();
        for service in Service::ALL {
            let stock = Path::new(service.default_config_file());
            let config_file = match stock.file_name() {
                Some(name) => etc_kea.join(name),
                None => stock.to_path_buf(),
            };
            if config_file.is_file() {
                services.push(ServiceConfig {
                    config_file,
                    ..ServiceConfig::new(service)
                });
            } else {
                looked_for.push(config_file);
            }
        }
        if services.is_empty() {
            return Err(ConfigError::NothingDiscovered {
                looked_for,
                agent_config: None,
            });
        }
        Ok(AgentConfig {
            agent: AgentSettings::default(),
            services,
            source: ConfigSource::Discovered,
            upstream: None,
            hooks: Vec::new(),
            outbox: OutboxLimits::default(),
        })
    }

    /// `--config FILE` given: load it; else /etc/kea-sync-agent/agent.toml
    /// when it exists; else discover services in /etc/kea.
    pub fn from_cli(path: Option<&Path>) -> Result<AgentConfig, ConfigError> {
        AgentConfig::from_cli_in(
            path,
            Path::new(DEFAULT_AGENT_CONFIG),
            Path::new(DEFAULT_ETC_KEA),
        )
    }

    /// [`AgentConfig::from_cli`] with the default locations given, for tests.
    fn from_cli_in(
        path: Option<&Path>,
        default_config: &Path,
        etc_kea: &Path,
    ) -> Result<AgentConfig, ConfigError> {
        if let Some(path) = path {
            return AgentConfig::load(path);
        }
        // A dangling symlink or unreadable file should fail loudly, not fall
        // back to discovery: so ask whether anything is there at all.
        if default_config.symlink_metadata().is_ok() {
            return AgentConfig::load(default_config);
        }
        AgentConfig::discover(etc_kea).map_err(|error| match error {
            ConfigError::NothingDiscovered { looked_for, .. } => ConfigError::NothingDiscovered {
                looked_for,
                agent_config: Some(default_config.to_path_buf()),
            },
            other => other,
        })
    }

    /// The config of one service, if it is managed.
    pub fn service(&self, service: Service) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.service == service)
    }
}
