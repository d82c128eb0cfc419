//! The pipeline's reads of the disk and /proc: the config files as Kea would
//! read them, their modification times, a Kea process's start time.

use super::super::decide::FileRead;
use crate::dialect::{self, Expanded, Style};
use crate::digest::{hex, json_value_digest};
use crate::kea::Service;
use crate::kea::ha::{self, Relationship};
use crate::validate::{LoadFacts, service_members};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// The files as read, parsed or not.
pub(super) struct Read {
    pub file: FileRead,
    pub expanded: Option<Expanded>,
    /// The facts of `expanded`, found when first asked for.
    facts: OnceLock<ConfigFacts>,
}

impl Read {
    /// What the pipeline asks of the parsed files (empty when they did not parse).
    pub fn facts(&self, service: Service) -> &ConfigFacts {
        self.facts.get_or_init(|| match &self.expanded {
            Some(expanded) => ConfigFacts::of(&expanded.json, service),
            None => ConfigFacts::default(),
        })
    }

    /// Whether Kea running these files changes its config only by
    /// reconfiguring (no hook or config backend changes it in place).
    pub fn changes_only_by_reconfiguring(&self, service: Service) -> bool {
        self.facts(service).load.changes_only_by_reconfiguring()
    }
}

/// Reads and expands `config_file` and its includes once; the digest covers
/// exactly the bytes parsed. A file that does not parse is digested with its
/// error, so the same breakage is recognised again.
pub(super) fn read_config(config_file: &Path, include_base: &Path) -> Read {
    match dialect::expand_file(config_file, include_base, Style::Compact) {
        Ok(expanded) => Read {
            file: FileRead::Parsed {
                sha256: expanded.sha256.clone(),
            },
            expanded: Some(expanded),
            facts: OnceLock::new(),
        },
        Err(error) => {
            let bytes = std::fs::read(config_file).unwrap_or_default();
            let mut digest = Sha256::new();
            digest.update(&bytes);
            digest.update(error.to_string().as_bytes());
            Read {
                file: FileRead::Unparsable {
                    sha256: hex(&digest.finalize()),
                    error: error.to_string(),
                },
                expanded: None,
                facts: OnceLock::new(),
            }
        }
    }
}

/// The digest of the `key` member (the service map) of a config document,
/// as a stream (no value tree of a large config): equal digests mean equal
/// values. None when the document or the member is missing or not JSON.
pub(super) fn service_digest(json: &str, key: &str) -> Option<[u8; 32]> {
    let top: indexmap::IndexMap<String, &RawValue> = serde_json::from_str(json).ok()?;
    json_value_digest(top.get(key)?.get()).ok()
}

/// When process `pid` started, from /proc (10 ms precision); None when it
/// is not visible here (Kea on another host or in another pid namespace).
pub(super) fn process_start(pid: u32) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime, clock ticks after boot), counted after the ")" of the name.
    let start_ticks: f64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // USER_HZ is 100 on every Linux architecture the agent runs on.
    let age = uptime - start_ticks / 100.0;
    SystemTime::now().checked_sub(Duration::from_secs_f64(age.max(0.0)))
}

/// The latest modification time among `files` (unreadable ones count as now:
/// when unsure, assume the file is newer than Kea's load).
pub(super) fn newest_mtime(files: &[PathBuf]) -> SystemTime {
    files
        .iter()
        .map(|file| mtime(file).unwrap_or_else(SystemTime::now))
        .max()
        .unwrap_or_else(SystemTime::now)
}

/// When `path` was last modified, if it can be read.
pub(super) fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// What the pipeline asks of a config document, read in one pass over its
/// service map (a large config is tokenized once, not once per question).
#[derive(Debug, Default)]
pub(super) struct ConfigFacts {
    /// The keys of the service map (does it look like Kea's own config-write?).
    pub keys: Vec<String>,
    /// Whether `-T` is safe on it.
    pub load: LoadFacts,
    /// The interfaces it binds DHCP sockets on (`interfaces-config`).
    pub interfaces: Vec<String>,
    /// Its HA relationships (the HA hook's parameters).
    pub ha: Vec<Relationship>,
}

impl ConfigFacts {
    /// The facts of `json`; empty ones for a document that does not parse.
    pub fn of(json: &str, service: Service) -> ConfigFacts {
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct InterfacesConfig {
            interfaces: Vec<String>,
        }
        let Some(members) = service_members(json, service) else {
            return ConfigFacts::default();
        };
        let interfaces = members
            .get("interfaces-config")
            .and_then(|raw| serde_json::from_str::<InterfacesConfig>(raw.get()).ok())
            .map(|config| config.interfaces)
            .unwrap_or_default();
        ConfigFacts {
            keys: members.keys().cloned().collect(),
            load: LoadFacts::from_members(&members, service),
            interfaces,
            ha: ha::relationships(members.get("hooks-libraries").copied()),
        }
    }
}
