//! The event vocabulary, defined once: what the agent decided for a service
//! ([`Outcome`], [`SyncEvent`]), which of those go upstream ([`Kind`]), and
//! the v1 wire form both the agent's encoder and kea-sync-central's parser
//! use ([`wire`], docs/upstream-api.md).

pub mod wire;

use crate::kea::Service;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::path::PathBuf;
use std::time::SystemTime;

/// The schema tag of every v1 event.
pub const SCHEMA: &str = "kea-sync-agent/event/v1";

/// What the agent did (or found) for one service at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Validated, reloaded, and verified live in Kea.
    Applied,
    /// Kea refused the content (validation or the reload itself); not live.
    Rejected,
    /// Kea's in-memory config already is the file's content; no reload.
    InSync,
    /// Same content as last time (touch, chmod, identical rewrite).
    Unchanged,
    /// Kea could not be reached; will retry.
    Unreachable,
    /// Kea's in-memory config, sent at start and after Kea restarts when it
    /// differs from what was last pushed upstream.
    Snapshot,
    /// Kea's in-memory config changed without the agent reloading it (a
    /// central's config-set, a hook).
    Drift,
}

impl Outcome {
    /// `apply`'s exit code for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Applied
            | Outcome::Unchanged
            | Outcome::InSync
            | Outcome::Snapshot
            | Outcome::Drift => 0,
            Outcome::Rejected => 1,
            Outcome::Unreachable => 2,
        }
    }

    /// The upstream kind of this outcome; None for outcomes that stay local
    /// (in-sync, unchanged, unreachable).
    pub fn kind(self) -> Option<Kind> {
        match self {
            Outcome::Applied => Some(Kind::Applied),
            Outcome::Rejected => Some(Kind::Rejected),
            Outcome::Snapshot => Some(Kind::Snapshot),
            Outcome::Drift => Some(Kind::Drift),
            Outcome::InSync | Outcome::Unchanged | Outcome::Unreachable => None,
        }
    }
}

/// What happened on the Kea server, as the upstream sees it
/// (docs/upstream-api.md, "Kinds").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Applied,
    Rejected,
    Drift,
    Snapshot,
}

impl Kind {
    /// Every kind, in the order the contract lists them.
    pub const ALL: [Kind; 4] = [Kind::Applied, Kind::Rejected, Kind::Drift, Kind::Snapshot];

    /// The kind's name in events, outbox file names and the central's store.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Applied => "applied",
            Kind::Rejected => "rejected",
            Kind::Drift => "drift",
            Kind::Snapshot => "snapshot",
        }
    }

    /// The kind named `text`, if it is one.
    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Whether events of this kind carry Kea's full in-memory config (and so
    /// make a version at the central): all but `rejected`, whose config
    /// never went live.
    pub fn carries_config(self) -> bool {
        !matches!(self, Kind::Rejected)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision's record.
#[derive(Debug, Serialize)]
pub struct SyncEvent {
    /// The upstream id (ULID) once the outbox took the event; None for
    /// outcomes that stay local, and before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub service: Service,
    pub outcome: Outcome,
    /// The main config file.
    pub file: PathBuf,
    /// SHA-256 of the bytes read (all files, see `Expanded::sha256`).
    pub file_sha256: Option<String>,
    pub kea_version: Option<String>,
    /// Kea's hash of its in-memory config after the step (Kea's own on 2.4+,
    /// SHA-256 of config-get's serialization on 2.2).
    pub config_hash: Option<String>,
    /// Kea's text (the error for `rejected`), or why nothing was done.
    pub text: String,
    #[serde(with = "rfc3339")]
    pub detected_at: SystemTime,
    #[serde(with = "rfc3339")]
    pub finished_at: SystemTime,
    /// A failed reload was undone: Kea runs the last good config again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<bool>,
    /// Whether Kea serves DHCP after the step, when the step touched Kea
    /// and the agent could see (None: not checked, or cannot tell).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
    /// The server's HA relationships (empty: not an HA server).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ha: Vec<wire::Ha<String>>,
    /// What the operator should know though the step succeeded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Kea's in-memory config (config-get without `hash`) for applied,
    /// snapshot and drift: what goes upstream. Not printed. Kept in the
    /// buffer Kea's reply was read into (no copy of a large config).
    #[serde(skip)]
    pub config: Option<Box<RawValue>>,
}

impl SyncEvent {
    /// Logs the event as one structured line.
    pub fn log(&self) {
        let file = self.file.display().to_string();
        let sha = self.file_sha256.as_deref().unwrap_or("-");
        let hash = self.config_hash.as_deref().unwrap_or("-");
        let version = self.kea_version.as_deref().unwrap_or("-");
        let event = self.id.as_deref().unwrap_or("-");
        let millis = self
            .finished_at
            .duration_since(self.detected_at)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        if self.serving == Some(false) {
            tracing::error!(
                service = %self.service, event, outcome = ?self.outcome, file, file_sha256 = sha,
                kea_version = version, config_hash = hash, took_ms = millis as u64,
                rolled_back = self.rolled_back, serving = false, "{}", self.text
            );
            return;
        }
        match self.outcome {
            Outcome::Rejected | Outcome::Unreachable => tracing::warn!(
                service = %self.service, event, outcome = ?self.outcome, file, file_sha256 = sha,
                kea_version = version, config_hash = hash, took_ms = millis as u64,
                rolled_back = self.rolled_back, serving = self.serving, "{}", self.text
            ),
            _ => tracing::info!(
                service = %self.service, event, outcome = ?self.outcome, file, file_sha256 = sha,
                kea_version = version, config_hash = hash, took_ms = millis as u64, "{}", self.text
            ),
        }
    }

    /// The event as one JSON line (what `apply` prints).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The upstream kind, when this event goes upstream at all.
    pub fn kind(&self) -> Option<Kind> {
        self.outcome.kind()
    }

    /// A copy of the event without its config (which may be tens of MB).
    pub fn without_config(&self) -> SyncEvent {
        SyncEvent {
            id: self.id.clone(),
            service: self.service,
            outcome: self.outcome,
            file: self.file.clone(),
            file_sha256: self.file_sha256.clone(),
            kea_version: self.kea_version.clone(),
            config_hash: self.config_hash.clone(),
            text: self.text.clone(),
            detected_at: self.detected_at,
            finished_at: self.finished_at,
            rolled_back: self.rolled_back,
            serving: self.serving,
            ha: self.ha.clone(),
            warnings: self.warnings.clone(),
            config: None,
        }
    }
}

/// An event for unit tests: dhcp4, file digest `ab`, Kea hash `CD`, at the epoch.
#[cfg(test)]
pub(crate) fn example(outcome: Outcome, config: Option<&str>) -> SyncEvent {
    SyncEvent {
        id: None,
        service: Service::Dhcp4,
        outcome,
        file: "/etc/kea/kea-dhcp4.conf".into(),
        file_sha256: Some("ab".into()),
        kea_version: Some("2.2.0".into()),
        config_hash: Some("CD".into()),
        text: "config-reload: configuration live".into(),
        detected_at: SystemTime::UNIX_EPOCH,
        finished_at: SystemTime::UNIX_EPOCH,
        rolled_back: None,
        serving: None,
        ha: Vec::new(),
        warnings: Vec::new(),
        config: config.map(|c| RawValue::from_string(c.into()).expect("raw")),
    }
}

mod rfc3339 {
    use serde::Serializer;
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_millis(*time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_name_themselves_and_parse_back() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).expect("serialize");
            assert_eq!(json, format!("\"{kind}\""));
        }
        assert_eq!(Kind::parse("deleted"), None);
    }

    #[test]
    fn every_kind_but_rejected_carries_config() {
        let carrying: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| k.carries_config())
            .collect();
        assert_eq!(carrying, [Kind::Applied, Kind::Drift, Kind::Snapshot]);
    }

    #[test]
    fn only_upstream_outcomes_have_a_kind() {
        let cases = [
            (Outcome::Applied, Some(Kind::Applied)),
            (Outcome::Rejected, Some(Kind::Rejected)),
            (Outcome::Snapshot, Some(Kind::Snapshot)),
            (Outcome::Drift, Some(Kind::Drift)),
            (Outcome::InSync, None),
            (Outcome::Unchanged, None),
            (Outcome::Unreachable, None),
        ];
        for (outcome, kind) in cases {
            assert_eq!(outcome.kind(), kind, "{outcome:?}");
        }
    }
}
