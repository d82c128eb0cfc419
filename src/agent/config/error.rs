//! What can be wrong with the agent config, each naming the file (and, when
//! known, line and column) to fix.

use super::ConfigSource;
use crate::dialect::DialectError;
use crate::kea::{KeaError, Service};
use std::fmt;
use std::path::{Path, PathBuf};

/// A place in the agent config: `FILE:LINE:COL`, or `FILE` when no position is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLocation {
    pub path: PathBuf,
    /// 1-based line and column (in characters).
    pub line_col: Option<(usize, usize)>,
}

impl fmt::Display for ConfigLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line_col {
            Some((line, col)) => write!(f, "{}:{line}:{col}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// Why the agent config could not be read, or a service's control channel not found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// More than one thing is wrong: each on its own line, in the file's order.
    #[error("{} problems in {}:\n{}", problems.len(), path.display(), lines(problems))]
    Several {
        path: PathBuf,
        problems: Vec<ConfigError>,
    },

    #[error("cannot read agent config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// TOML syntax, unknown keys, wrong types, missing required keys.
    #[error("{at}: {message}")]
    Syntax { at: ConfigLocation, message: String },

    #[error(
        "{path}: no [[service]] table: add one per Kea daemon to manage, e.g. [[service]] name = \"dhcp4\""
    )]
    NoService { path: PathBuf },

    #[error("{at}: unknown Kea service \"{name}\": expected dhcp4, dhcp6 or d2")]
    UnknownService { at: ConfigLocation, name: String },

    #[error("{at}: service {service} is configured twice (first on line {first_line})")]
    DuplicateService {
        at: ConfigLocation,
        service: Service,
        first_line: usize,
    },

    #[error("{at}: service {service} sets both control_socket and control_url: keep one")]
    SocketAndUrl {
        at: ConfigLocation,
        service: Service,
    },

    #[error("{at}: settle_ms = {settle_ms} is more than the 60000 (one minute) allowed")]
    SettleTooLong { at: ConfigLocation, settle_ms: u64 },

    /// Options that only work in pairs: user/password_file, client_cert/client_key.
    #[error("{at}: service {service} sets {given} without {missing}: set both or neither")]
    HalfPair {
        at: ConfigLocation,
        service: Service,
        given: &'static str,
        missing: &'static str,
    },

    #[error("{at}: control_url \"{url}\" must start with http:// or https://")]
    BadUrl { at: ConfigLocation, url: String },

    #[error("{at}: timeout_s must be at least 1")]
    ZeroTimeout { at: ConfigLocation },

    #[error(
        "no Kea config file found ({}){}: write an agent config naming the services to manage",
        paths_text(looked_for),
        agent_config.as_ref().map(|p| format!(" and no agent config {}", p.display())).unwrap_or_default()
    )]
    NothingDiscovered {
        /// The Kea config files looked for.
        looked_for: Vec<PathBuf>,
        /// The default agent config, when that was looked for too.
        agent_config: Option<PathBuf>,
    },

    #[error(
        "{source_config}: state_dir cannot change while the agent runs (it holds {from}): restart the service to use {to}"
    )]
    StateDirChanged {
        source_config: ConfigSource,
        from: PathBuf,
        to: PathBuf,
    },

    #[error("cannot read the control socket of {service} from its config: {source}")]
    KeaConfig {
        service: Service,
        #[source]
        source: Box<DialectError>,
    },

    #[error("{path} is not valid JSON once expanded: {source}")]
    KeaConfigJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "{config_file} has no usable control-socket for {}: add one or set control_socket in {}",
        service.config_key(),
        agent_config.where_to_set()
    )]
    NoControlSocket {
        config_file: PathBuf,
        service: Service,
        agent_config: ConfigSource,
    },

    #[error(
        "Kea's TLS control socket of {service} at {url} ({config_file}) requires a client certificate (cert-required is true, Kea's default): set client_cert and client_key in {}, or cert-required false in Kea's config",
        agent_config.where_to_set()
    )]
    KeaWantsClientCert {
        service: Service,
        config_file: PathBuf,
        url: String,
        agent_config: ConfigSource,
    },

    #[error(
        "cannot use the basic-auth client of {service}'s control socket in Kea's config ({}): {problem}; the agent reads what Kea reads (run it as Kea's user), or set user and password_file in {}",
        path.display(),
        agent_config.where_to_set()
    )]
    KeaAuthFile {
        service: Service,
        path: PathBuf,
        problem: String,
        agent_config: ConfigSource,
    },

    #[error("cannot set up HTTP control of {service} at {url} (see {}): {source}", agent_config.where_to_set())]
    HttpControl {
        service: Service,
        url: String,
        agent_config: ConfigSource,
        #[source]
        source: Box<KeaError>,
    },
}

impl ConfigError {
    /// None when nothing is wrong, the one problem, or all of them (`Several`).
    pub fn of_all(path: &Path, mut problems: Vec<ConfigError>) -> Option<ConfigError> {
        problems.sort_by_key(|problem| problem.line_col().unwrap_or((usize::MAX, 0)));
        match problems.len() {
            0 => None,
            1 => problems.pop(),
            _ => Some(ConfigError::Several {
                path: path.to_path_buf(),
                problems,
            }),
        }
    }
}

impl ConfigError {
    /// Where in the agent config it is, when that is known.
    fn line_col(&self) -> Option<(usize, usize)> {
        match self {
            ConfigError::Syntax { at, .. }
            | ConfigError::UnknownService { at, .. }
            | ConfigError::DuplicateService { at, .. }
            | ConfigError::SocketAndUrl { at, .. }
            | ConfigError::SettleTooLong { at, .. }
            | ConfigError::HalfPair { at, .. }
            | ConfigError::BadUrl { at, .. }
            | ConfigError::ZeroTimeout { at } => at.line_col,
            _ => None,
        }
    }
}

fn lines(problems: &[ConfigError]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
    lines.join("\n")
}

fn paths_text(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}
