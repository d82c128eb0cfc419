//! What each decision of the agent yields: one event, logged as one
//! structured line and handed to the upstream channel.

use crate::kea::Service;
use serde::Serialize;
use serde_json::value::RawValue;
use std::path::PathBuf;
use std::time::SystemTime;

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
}

/// One decision's record.
#[derive(Debug, Serialize)]
pub struct SyncEvent {
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
        let millis = self
            .finished_at
            .duration_since(self.detected_at)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        match self.outcome {
            Outcome::Rejected | Outcome::Unreachable => tracing::warn!(
                service = %self.service, outcome = ?self.outcome, file, file_sha256 = sha,
                kea_version = version, config_hash = hash, took_ms = millis as u64, "{}", self.text
            ),
            _ => tracing::info!(
                service = %self.service, outcome = ?self.outcome, file, file_sha256 = sha,
                kea_version = version, config_hash = hash, took_ms = millis as u64, "{}", self.text
            ),
        }
    }

    /// The event as one JSON line (what `apply` prints).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

mod rfc3339 {
    use serde::Serializer;
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_millis(*time))
    }
}
