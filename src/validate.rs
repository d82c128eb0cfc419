//! Checking a config file exactly as Kea would load it, before anyone sends
//! config-reload: `kea-dhcp4 -t FILE` (out of process, so the serving daemon
//! never stalls), on Kea 2.4+ `-T` where that is safe (it also opens the
//! databases and loads the hooks, [`choose_depth`]), or, when the binary is
//! absent, `config-test` with the dialect-expanded document.

use crate::dialect::{self, Style};
use crate::kea::{ControlChannel, KeaError, KeaVersion, Service};
use indexmap::IndexMap;
use serde_json::value::RawValue;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Directories searched for Kea's binaries besides PATH (sbin is often not
/// in a service user's PATH).
const SBIN_DIRS: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/sbin"];

/// Kea's answer about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    /// Kea's own error text.
    Invalid(String),
}

/// How thoroughly a file is checked before a reload (`validation` in a
/// `[[service]]` table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Thoroughness {
    /// `-T` where it is known to be safe (see [`choose_depth`]), else `-t`.
    #[default]
    Auto,
    /// `-t` only: the config as Kea parses it.
    Basic,
    /// `-T` whenever Kea has it (2.4+): databases opened, hooks loaded.
    Full,
}

/// What the validator binary is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// `-t`: parse and check the config.
    Parse,
    /// `-T`: also open the databases and load the hook libraries.
    Load,
}

impl Depth {
    fn flag(self) -> &'static str {
        match self {
            Depth::Parse => "-t",
            Depth::Load => "-T",
        }
    }
}

/// The HA hook's library file.
const HA_HOOK: &str = "libdhcp_ha.so";

/// Hook libraries that `-T` loads without binding, writing or contacting
/// anything (checked with Kea 3.0.4 beside a live Kea running the same
/// config; HA's dedicated listener is not bound by `-T`). The database
/// hooks open a connection, which is the point.
const SAFE_TO_LOAD: [&str; 15] = [
    "libdhcp_lease_cmds.so",
    "libdhcp_host_cmds.so",
    "libdhcp_subnet_cmds.so",
    "libdhcp_class_cmds.so",
    "libdhcp_stat_cmds.so",
    "libdhcp_ha.so",
    "libdhcp_pgsql.so",
    "libdhcp_mysql.so",
    "libdhcp_bootp.so",
    "libdhcp_limits.so",
    "libdhcp_perfmon.so",
    "libdhcp_host_cache.so",
    "libdhcp_flex_id.so",
    "libdhcp_flex_option.so",
    "libdhcp_ddns_tuning.so",
];

/// Hook libraries that never change the config Kea runs in place: none of
/// them has subnet, host, class or config-backend commands (host_cmds,
/// subnet_cmds, class_cmds, cb_cmds do; host_cache keeps hosts of its own,
/// perfmon-control retunes perfmon at runtime).
/// With only these loaded and no config backend, Kea's config changes only
/// when Kea reconfigures: config-reload, config-set, a restart.
const LEAVE_CONFIG_ALONE: [&str; 13] = [
    "libdhcp_lease_cmds.so",
    "libdhcp_stat_cmds.so",
    "libdhcp_ha.so",
    "libdhcp_pgsql.so",
    "libdhcp_mysql.so",
    "libdhcp_bootp.so",
    "libdhcp_limits.so",
    "libdhcp_flex_id.so",
    "libdhcp_flex_option.so",
    "libdhcp_ddns_tuning.so",
    "libdhcp_run_script.so",
    "libdhcp_legal_log.so",
    "libdhcp_ping_check.so",
];

/// What of a config decides whether `-T` is safe on it, and whether Kea
/// may change it without reconfiguring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadFacts {
    /// The lease database is a memfile that persists to a lease file (the
    /// default): `-T` opens that file for appending (refused under the
    /// agent's read-only view of /var/lib/kea) and reads every lease.
    pub memfile_lease_file: bool,
    /// The file names of the hook libraries.
    pub hooks: Vec<String>,
    /// A `config-control` map: a config backend may merge its changes into
    /// the running config.
    pub config_backend: bool,
}

impl LoadFacts {
    /// Reads the facts off an expanded config document.
    pub fn of(json: &str, service: Service) -> LoadFacts {
        let members = service_members(json, service).unwrap_or_default();
        LoadFacts::from_members(&members, service)
    }

    /// Reads the facts off the members of the service map (raw: only the
    /// two members they need are decoded).
    pub fn from_members(members: &IndexMap<String, &RawValue>, service: Service) -> LoadFacts {
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct Hook {
            library: String,
        }
        let decode = |key: &str| members.get(key).map(|raw| raw.get());
        let lease_database: Option<serde_json::Value> =
            decode("lease-database").and_then(|raw| serde_json::from_str(raw).ok());
        let hooks: Vec<Hook> = decode("hooks-libraries")
            .and_then(|raw| serde_json::from_str(raw).ok())
            .unwrap_or_default();
        let memfile_lease_file = matches!(service, Service::Dhcp4 | Service::Dhcp6)
            && lease_database.as_ref().is_none_or(|db| {
                db["type"].as_str().is_none_or(|t| t == "memfile")
                    && db["persist"].as_bool().unwrap_or(true)
            });
        let hooks = hooks
            .into_iter()
            .map(|hook| {
                Path::new(&hook.library)
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or(hook.library)
            })
            .collect();
        LoadFacts {
            memfile_lease_file,
            hooks,
            config_backend: members.contains_key("config-control"),
        }
    }

    /// Whether Kea can change this config only by reconfiguring (no config
    /// backend, no hook outside [`LEAVE_CONFIG_ALONE`]).
    pub fn changes_only_by_reconfiguring(&self) -> bool {
        !self.config_backend
            && self
                .hooks
                .iter()
                .all(|hook| LEAVE_CONFIG_ALONE.contains(&hook.as_str()))
    }
}

/// The members of the service's map (`{"Dhcp4": {...}}`), raw, in one pass
/// over the document; None when it is no such document.
pub fn service_members(json: &str, service: Service) -> Option<IndexMap<String, &RawValue>> {
    let top: IndexMap<String, &RawValue> = serde_json::from_str(json).ok()?;
    serde_json::from_str(top.get(service.config_key())?.get()).ok()
}

/// The depth a file is checked at, and, when that is less than asked for,
/// why. Pure. `kea_version` is the running Kea's (`-T` came with 2.4, to the
/// DHCP servers only: kea-dhcp-ddns 3.0.4 answers "unsupported option: -T").
pub fn choose_depth(
    service: Service,
    thoroughness: Thoroughness,
    kea_version: Option<&str>,
    facts: &LoadFacts,
) -> (Depth, Option<String>) {
    if thoroughness == Thoroughness::Basic {
        return (Depth::Parse, None);
    }
    if service == Service::D2 {
        return (
            Depth::Parse,
            Some(format!("{} has no -T", service.daemon_binary())),
        );
    }
    let version = kea_version.and_then(KeaVersion::parse);
    let has_load = version.is_some_and(KeaVersion::has_load_check);
    if !has_load {
        let why = match kea_version {
            Some(version) => format!("Kea {version} has no -T (2.4+)"),
            None => "Kea's version is not known yet".to_string(),
        };
        return (Depth::Parse, Some(why));
    }
    if version.is_some_and(|version| version < KeaVersion::new(2, 7, 0))
        && let Some(defect) = refused_by_load_check_before_2_7(service, facts)
    {
        return (
            Depth::Parse,
            Some(format!(
                "Kea {}'s {defect}; failures while applying are rolled back instead",
                kea_version.unwrap_or_default()
            )),
        );
    }
    if thoroughness == Thoroughness::Full {
        return (Depth::Load, None);
    }
    if facts.memfile_lease_file {
        return (
            Depth::Parse,
            Some("the lease database is a memfile with a lease file, which -T would open".into()),
        );
    }
    let unvetted: Vec<&str> = facts
        .hooks
        .iter()
        .map(String::as_str)
        .filter(|hook| !SAFE_TO_LOAD.contains(hook))
        .collect();
    if !unvetted.is_empty() {
        return (
            Depth::Parse,
            Some(format!(
                "-T would load hooks not known to be safe to load twice: {}",
                unvetted.join(", ")
            )),
        );
    }
    (Depth::Load, None)
}

/// Why `-T` of Kea 2.4-2.6 would refuse every file of this service, if it
/// would (seen on 2.6.3, not on 3.0.4): kea-dhcp6's opens the control socket
/// whose lock the running server holds; and `-T` never enables
/// multi-threading, so HA's own HTTP listener (its default under
/// multi-threading since 2.4) fails to start. Even when `full` asks for `-T`.
fn refused_by_load_check_before_2_7(service: Service, facts: &LoadFacts) -> Option<&'static str> {
    if service == Service::Dhcp6 {
        return Some(
            "kea-dhcp6 -T opens the control socket the running server holds \
             (\"cannot lock socket lockfile\")",
        );
    }
    if facts.hooks.iter().any(|hook| hook == HA_HOOK) {
        return Some(
            "-T refuses the HA hook's own HTTP listener (\"CmdHttpListener cannot be started \
             when multi-threading is disabled\")",
        );
    }
    None
}

/// How the verdict was reached, for logs and `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `BINARY -t FILE` (or `-T`).
    Binary(PathBuf, Depth),
    /// `config-test` through the given socket or URL.
    ConfigTest(String),
}

/// A verdict and where it came from.
#[derive(Debug, Clone)]
pub struct Validation {
    pub verdict: Verdict,
    pub method: Method,
}

/// Why no verdict could be had.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("cannot run validator {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("validator {binary} did not finish checking {file} within {} s", after.as_secs())]
    Timeout {
        binary: PathBuf,
        file: PathBuf,
        after: Duration,
    },
    #[error(
        "cannot validate {file}: {binary} is not installed (install Kea's server package or set `validator`) and no control channel is known for the config-test fallback"
    )]
    NoValidator { binary: String, file: PathBuf },
    #[error("config-test fallback for {file}: {source}")]
    ConfigTest {
        file: PathBuf,
        #[source]
        source: KeaError,
    },
}

/// Validates one service's config files.
#[derive(Debug, Clone)]
pub struct Validator {
    service: Service,
    binary: Option<PathBuf>,
    include_base: PathBuf,
    timeout: Duration,
}

impl Validator {
    /// `binary`: the validator to run (default: the service's daemon found
    /// in PATH or sbin). `include_base`: the directory Kea resolves relative
    /// includes against; the validator runs there.
    pub fn new(
        service: Service,
        binary: Option<PathBuf>,
        include_base: PathBuf,
        timeout: Duration,
    ) -> Validator {
        Validator {
            service,
            binary,
            include_base,
            timeout,
        }
    }

    /// The validator binary that would run, if it exists.
    pub fn binary(&self) -> Option<PathBuf> {
        match &self.binary {
            Some(path) => path.is_file().then(|| path.clone()),
            None => find_in_path(self.service.daemon_binary()),
        }
    }

    /// Checks `file` as Kea would load it, at `depth` when the validator
    /// binary is there (config-test, the fallback, has one depth).
    pub async fn validate(
        &self,
        file: &Path,
        fallback: Option<&ControlChannel>,
        depth: Depth,
    ) -> Result<Validation, ValidateError> {
        if let Some(binary) = self.binary() {
            return self.run_binary(&binary, file, depth).await;
        }
        let channel = fallback.ok_or_else(|| ValidateError::NoValidator {
            binary: self.binary_name(),
            file: file.to_path_buf(),
        })?;
        self.config_test(file, channel).await
    }

    fn binary_name(&self) -> String {
        match &self.binary {
            Some(path) => path.display().to_string(),
            None => self.service.daemon_binary().to_string(),
        }
    }

    async fn run_binary(
        &self,
        binary: &Path,
        file: &Path,
        depth: Depth,
    ) -> Result<Validation, ValidateError> {
        // Absolute, because the validator runs in the include base.
        let file_arg = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let child = tokio::process::Command::new(binary)
            .arg(depth.flag())
            .arg(&file_arg)
            .current_dir(&self.include_base)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ValidateError::Spawn {
                binary: binary.to_path_buf(),
                source,
            })?;
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| ValidateError::Timeout {
                binary: binary.to_path_buf(),
                file: file.to_path_buf(),
                after: self.timeout,
            })?
            .map_err(|source| ValidateError::Spawn {
                binary: binary.to_path_buf(),
                source,
            })?;
        let verdict = if output.status.success() {
            Verdict::Valid
        } else {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            Verdict::Invalid(kea_error_text(&stderr, &stdout))
        };
        Ok(Validation {
            verdict,
            method: Method::Binary(binary.to_path_buf(), depth),
        })
    }

    async fn config_test(
        &self,
        file: &Path,
        channel: &ControlChannel,
    ) -> Result<Validation, ValidateError> {
        let method = Method::ConfigTest(channel.endpoint());
        let expanded = match dialect::expand_file(file, &self.include_base, Style::Compact) {
            Ok(expanded) => expanded,
            // A file Kea could not read is Kea's "invalid", not our failure.
            Err(error) => {
                return Ok(Validation {
                    verdict: Verdict::Invalid(error.to_string()),
                    method,
                });
            }
        };
        let document = match service_document(&expanded.json, self.service) {
            Ok(document) => document,
            Err(why) => {
                return Ok(Validation {
                    verdict: Verdict::Invalid(format!("{}: {why}", file.display())),
                    method,
                });
            }
        };
        let reply =
            channel
                .config_test(document)
                .await
                .map_err(|source| ValidateError::ConfigTest {
                    file: file.to_path_buf(),
                    source,
                })?;
        let verdict = if reply.outcome.is_ok() {
            Verdict::Valid
        } else {
            Verdict::Invalid(reply.text)
        };
        Ok(Validation { verdict, method })
    }
}

/// Picks `{"Dhcp4": {...}}` out of a whole expanded file: config-test takes
/// exactly that one key (and refuses the `hash` key config-get adds).
pub fn service_document(json: &str, service: Service) -> Result<Box<RawValue>, String> {
    let top: IndexMap<String, Box<RawValue>> =
        serde_json::from_str(json).map_err(|e| format!("the top level is not a map ({e})"))?;
    let key = service.config_key();
    let body = top
        .get(key)
        .ok_or_else(|| format!("no \"{key}\" map at the top level"))?;
    let mut document = IndexMap::new();
    document.insert(key, body);
    serde_json::value::to_raw_value(&document).map_err(|e| e.to_string())
}

/// Kea's own words from a failed `-t` run: the "Error encountered:" or
/// "Syntax check failed with:" line, else the ERROR log lines, else all.
fn kea_error_text(stderr: &str, stdout: &str) -> String {
    const PREFIXES: [&str; 2] = ["Error encountered: ", "Syntax check failed with: "];
    let summary: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter_map(|line| {
            PREFIXES
                .iter()
                .find_map(|p| line.split_once(p).map(|(_, rest)| rest))
        })
        .collect();
    if !summary.is_empty() {
        return summary.join("; ");
    }
    let errors: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|line| line.contains(" ERROR ") || line.contains(" FATAL "))
        .collect();
    if !errors.is_empty() {
        return errors.join("; ");
    }
    let all = format!("{}{}", stderr.trim(), stdout.trim());
    if all.is_empty() {
        "the validator failed without saying why".into()
    } else {
        all
    }
}

/// Finds an executable in PATH, then in the sbin directories.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_prefers_keas_summary_line() {
        let cases = [
            (
                "Syntax check failed with: syn.json:1.24: syntax error, unexpected }, expecting ]\n",
                "",
                "syn.json:1.24: syntax error, unexpected }, expecting ]",
            ),
            (
                "Error encountered: subnet configuration failed: bad pool (bad.json:1:23)\n",
                "2026 INFO x\n2026 ERROR [kea] DHCP4_PARSER_FAIL failed\n",
                "subnet configuration failed: bad pool (bad.json:1:23)",
            ),
            (
                "",
                "2026 ERROR [kea] DHCP4_PARSER_FAIL failed\n",
                "2026 ERROR [kea] DHCP4_PARSER_FAIL failed",
            ),
            ("", "", "the validator failed without saying why"),
        ];
        for (stderr, stdout, expected) in cases {
            assert_eq!(kea_error_text(stderr, stdout), expected);
        }
    }

    #[test]
    fn depth_table() {
        let safe = LoadFacts {
            memfile_lease_file: false,
            hooks: vec!["libdhcp_ha.so".into(), "libdhcp_lease_cmds.so".into()],
            ..LoadFacts::default()
        };
        let lease_cmds = LoadFacts {
            memfile_lease_file: false,
            hooks: vec!["libdhcp_lease_cmds.so".into()],
            ..LoadFacts::default()
        };
        let lease_file = LoadFacts {
            memfile_lease_file: true,
            ..LoadFacts::default()
        };
        let script = LoadFacts {
            hooks: vec!["libdhcp_run_script.so".into()],
            ..LoadFacts::default()
        };
        use Thoroughness::{Auto, Basic, Full};
        let cases = [
            (Auto, Some("3.0.4"), &safe, Depth::Load, false),
            (Auto, Some("2.4.1"), &lease_cmds, Depth::Load, false),
            // 2.4-2.6's -T cannot start HA's listener: -t, even when asked for.
            (Auto, Some("2.6.3"), &safe, Depth::Parse, true),
            (Full, Some("2.6.3"), &safe, Depth::Parse, true),
            (Auto, Some("2.7.2"), &safe, Depth::Load, false),
            (Auto, Some("2.2.0"), &safe, Depth::Parse, true),
            (Auto, None, &safe, Depth::Parse, true),
            (Auto, Some("3.0.4"), &lease_file, Depth::Parse, true),
            (Auto, Some("3.0.4"), &script, Depth::Parse, true),
            (Basic, Some("3.0.4"), &safe, Depth::Parse, false),
            (Full, Some("3.0.4"), &script, Depth::Load, false),
            (Full, Some("2.2.0"), &safe, Depth::Parse, true),
        ];
        for (thoroughness, version, facts, depth, said_why) in cases {
            let (got, why) = choose_depth(Service::Dhcp4, thoroughness, version, facts);
            assert_eq!(
                (got, why.is_some()),
                (depth, said_why),
                "{thoroughness:?} {version:?} {facts:?}: {why:?}"
            );
        }
    }

    /// kea-dhcp6 -T of 2.4-2.6 refuses a running server's file (its socket lock).
    #[test]
    fn dhcp6_gets_load_checks_from_2_7_on() {
        let no_hooks = LoadFacts::default();
        for (version, depth) in [
            ("2.6.3", Depth::Parse),
            ("2.4.1", Depth::Parse),
            ("2.7.2", Depth::Load),
            ("3.0.4", Depth::Load),
        ] {
            let (got, why) =
                choose_depth(Service::Dhcp6, Thoroughness::Full, Some(version), &no_hooks);
            assert_eq!(got, depth, "{version}: {why:?}");
            assert_eq!(why.is_some(), depth == Depth::Parse, "{version}: {why:?}");
        }
    }

    /// kea-dhcp-ddns takes -t only (2.2 to 3.0): -T would reject every file.
    #[test]
    fn d2_is_checked_with_parse_only_on_every_version() {
        for thoroughness in [Thoroughness::Auto, Thoroughness::Full] {
            for version in ["2.2.0", "2.6.3", "3.0.4"] {
                let (depth, why) = choose_depth(
                    Service::D2,
                    thoroughness,
                    Some(version),
                    &LoadFacts::default(),
                );
                assert_eq!(depth, Depth::Parse, "{thoroughness:?} {version}");
                assert_eq!(why.as_deref(), Some("kea-dhcp-ddns has no -T"));
            }
        }
        let (depth, _) = choose_depth(
            Service::Dhcp6,
            Thoroughness::Auto,
            Some("3.0.4"),
            &LoadFacts::default(),
        );
        assert_eq!(depth, Depth::Load, "kea-dhcp6 has -T");
    }

    #[test]
    fn load_facts_read_the_lease_database_and_hooks() {
        let facts = |json: &str| LoadFacts::of(json, Service::Dhcp4);
        assert!(
            facts(r#"{"Dhcp4": {}}"#).memfile_lease_file,
            "memfile persists by default"
        );
        assert!(
            !facts(r#"{"Dhcp4": {"lease-database": {"type": "memfile", "persist": false}}}"#)
                .memfile_lease_file
        );
        let pg = facts(
            r#"{"Dhcp4": {"lease-database": {"type": "postgresql"},
                "hooks-libraries": [{"library": "/usr/lib/kea/hooks/libdhcp_pgsql.so"}]}}"#,
        );
        assert_eq!(
            pg,
            LoadFacts {
                memfile_lease_file: false,
                hooks: vec!["libdhcp_pgsql.so".into()],
                config_backend: false,
            }
        );
        assert!(pg.changes_only_by_reconfiguring());
        let subnet_cmds = facts(
            r#"{"Dhcp4": {"hooks-libraries": [{"library": "/usr/lib/kea/hooks/libdhcp_subnet_cmds.so"}]}}"#,
        );
        assert!(
            !subnet_cmds.changes_only_by_reconfiguring(),
            "subnet4-add changes the running config"
        );
        let backend = facts(r#"{"Dhcp4": {"config-control": {"config-databases": []}}}"#);
        assert!(backend.config_backend && !backend.changes_only_by_reconfiguring());
        assert!(
            !LoadFacts::of(r#"{"DhcpDdns": {}}"#, Service::D2).memfile_lease_file,
            "D2 has no lease database"
        );
    }

    #[test]
    fn service_document_keeps_only_the_service_key() {
        let json = r#"{"Dhcp4": {"subnet4": []}, "Logging": {}, "hash": "X"}"#;
        let document = service_document(json, Service::Dhcp4).expect("document");
        assert_eq!(document.get(), r#"{"Dhcp4":{"subnet4": []}}"#);
        assert!(service_document(json, Service::Dhcp6).is_err());
        assert!(service_document("[1]", Service::Dhcp4).is_err());
    }
}
