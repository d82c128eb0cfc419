//! What the store answers, as the read API serialises it (times as RFC 3339).

use super::StoreError;
use super::row::Row;
use crate::central::time::format_millis;
use crate::event::wire::Ha;
use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

/// One server and service of the fleet, with its current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerSummary {
    pub server: String,
    pub service: String,
    /// The newest version number (`None` before the first applied/snapshot config).
    pub version: Option<i64>,
    /// Content hash (SHA-256 of the canonical config) of that version.
    pub content_hash: Option<String>,
    /// Kea's own hash from the newest event that carried one.
    pub config_hash: Option<String>,
    pub kea_version: Option<String>,
    pub agent_host: String,
    pub agent_version: String,
    #[serde(rename = "last_applied_at", serialize_with = "opt_rfc3339")]
    pub last_applied_ms: Option<i64>,
    #[serde(rename = "last_seen_at", serialize_with = "rfc3339")]
    pub last_seen_ms: i64,
    pub last_event_kind: String,
    pub last_event_id: String,
    pub last_sequence: i64,
    pub last_text: String,
    /// A drift was reported and no applied/snapshot came since.
    pub drift_open: bool,
    /// An edit was rejected and no applied/snapshot came since.
    pub reject_open: bool,
    /// The HA relationships as the newest event reported them (at `last_seen_at`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ha: Vec<Ha<String>>,
}

impl ServerSummary {
    pub(super) fn from_row(row: &Row) -> Result<ServerSummary, StoreError> {
        Ok(ServerSummary {
            server: row.text(0)?,
            service: row.text(1)?,
            version: row.opt_int(2)?,
            content_hash: row.opt_text(3)?,
            config_hash: row.opt_text(4)?,
            kea_version: row.opt_text(5)?,
            agent_host: row.text(6)?,
            agent_version: row.text(7)?,
            last_applied_ms: row.opt_int(8)?,
            last_seen_ms: row.int(9)?,
            last_event_kind: row.text(10)?,
            last_event_id: row.text(11)?,
            last_sequence: row.int(12)?,
            last_text: row.text(13)?,
            drift_open: row.int(14)? != 0,
            reject_open: row.int(15)? != 0,
            ha: json_list(row.opt_text(16)?)?,
        })
    }
}

/// One config version of a server and service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// 1, 2, ... per server and service.
    pub number: i64,
    pub event_id: String,
    /// `applied` or `snapshot`.
    pub kind: String,
    pub content_hash: String,
    pub config_hash: Option<String>,
    /// Length of the config's canonical JSON.
    pub json_bytes: i64,
    #[serde(rename = "detected_at", serialize_with = "rfc3339")]
    pub detected_ms: i64,
    #[serde(rename = "applied_at", serialize_with = "opt_rfc3339")]
    pub applied_ms: Option<i64>,
    #[serde(rename = "received_at", serialize_with = "rfc3339")]
    pub received_ms: i64,
}

impl VersionInfo {
    pub(super) fn from_row(row: &Row) -> Result<VersionInfo, StoreError> {
        Ok(VersionInfo {
            number: row.int(0)?,
            event_id: row.text(1)?,
            kind: row.text(2)?,
            content_hash: row.text(3)?,
            config_hash: row.opt_text(4)?,
            json_bytes: row.int(5)?,
            detected_ms: row.int(6)?,
            applied_ms: row.opt_int(7)?,
            received_ms: row.int(8)?,
        })
    }
}

/// A version with its full config (canonical JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub info: VersionInfo,
    pub config_json: String,
}

/// One event as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventInfo {
    pub id: String,
    pub kind: String,
    pub sequence: i64,
    pub text: String,
    #[serde(rename = "detected_at", serialize_with = "rfc3339")]
    pub detected_ms: i64,
    /// As the agent sent it.
    pub applied_at: Option<String>,
    #[serde(rename = "received_at", serialize_with = "rfc3339")]
    pub received_ms: i64,
    pub config_hash: Option<String>,
    /// The version this event made, if it carried a config.
    pub version: Option<i64>,
    /// A rejected reload was rolled back: Kea runs the last good config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<bool>,
    /// Whether Kea served DHCP after the step, as the agent saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
    /// The server's HA relationships as the step left them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ha: Vec<Ha<String>>,
    /// What the agent warned about though the step succeeded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl EventInfo {
    pub(super) fn from_row(row: &Row) -> Result<EventInfo, StoreError> {
        Ok(EventInfo {
            id: row.text(0)?,
            kind: row.text(1)?,
            sequence: row.int(2)?,
            text: row.text(3)?,
            detected_ms: row.int(4)?,
            applied_at: row.opt_text(5)?,
            received_ms: row.int(6)?,
            config_hash: row.opt_text(7)?,
            version: row.opt_int(8)?,
            rolled_back: row.opt_int(9)?.map(|n| n != 0),
            serving: row.opt_int(10)?.map(|n| n != 0),
            ha: json_list(row.opt_text(11)?)?,
            warnings: json_list(row.opt_text(12)?)?,
        })
    }
}

/// How much is stored, and in how many bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StorageStats {
    pub events: i64,
    pub versions: i64,
    /// Distinct config bodies.
    pub configs: i64,
    /// Bytes of the stored (compressed) config bodies.
    pub config_bytes: i64,
    /// Bytes of those bodies' canonical JSON.
    pub config_json_bytes: i64,
    /// The whole database on disk (SQLite pages / pg_database_size).
    pub database_bytes: i64,
}

/// A stored JSON list (NULL: empty).
fn json_list<T: DeserializeOwned>(text: Option<String>) -> Result<Vec<T>, StoreError> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| StoreError::Data(format!("a stored JSON list does not parse: {e}"))),
    }
}

fn rfc3339<S: Serializer>(millis: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_millis(*millis))
}

fn opt_rfc3339<S: Serializer>(millis: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
    match millis {
        Some(millis) => rfc3339(millis, serializer),
        None => serializer.serialize_none(),
    }
}
