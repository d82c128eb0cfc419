//! The v1 event as it goes on the wire (docs/upstream-api.md). Pure.

use crate::agent::event::{Outcome, SyncEvent};
use serde::Serialize;
use serde_json::value::RawValue;
use std::time::SystemTime;

/// The schema tag of every v1 event.
pub const SCHEMA: &str = "kea-sync-agent/event/v1";

/// Who sends the events.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Identity {
    pub host: String,
    pub machine_id: String,
    pub version: String,
}

impl Identity {
    /// This host's name and machine id, and the agent's version.
    pub fn of_this_host() -> Identity {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|text| text.trim().to_string())
                .unwrap_or_default()
        };
        Identity {
            host: read("/proc/sys/kernel/hostname"),
            machine_id: read("/etc/machine-id"),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// The upstream kind of an outcome; None for outcomes that stay local
/// (in-sync, unchanged, unreachable).
pub fn kind_for(outcome: Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Applied => Some("applied"),
        Outcome::Rejected => Some("rejected"),
        Outcome::Snapshot => Some("snapshot"),
        Outcome::Drift => Some("drift"),
        Outcome::InSync | Outcome::Unchanged | Outcome::Unreachable => None,
    }
}

#[derive(Serialize)]
struct FileRef<'a> {
    path: String,
    sha256: Option<&'a str>,
}

#[derive(Serialize)]
struct Drift<'a> {
    file_sha256: Option<&'a str>,
    live_hash: Option<&'a str>,
}

#[derive(Serialize)]
struct WireEvent<'a> {
    schema: &'static str,
    id: &'a str,
    agent: &'a Identity,
    service: &'static str,
    kea_version: Option<&'a str>,
    kind: &'static str,
    sequence: u64,
    file: FileRef<'a>,
    config_hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<&'a RawValue>,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    drift: Option<Drift<'a>>,
    detected_at: String,
    applied_at: Option<String>,
    queued_at: String,
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// The request body for `event`, or None when its outcome stays local.
pub fn encode(
    event: &SyncEvent,
    id: &str,
    sequence: u64,
    identity: &Identity,
    queued_at: SystemTime,
) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    encode_into(event, id, sequence, identity, queued_at, &mut body)?.ok()?;
    Some(body)
}

/// Like [`encode`], written straight into `writer`: a config of tens of MB
/// is not held a second time as a body. None for events that are not sent.
pub fn encode_into(
    event: &SyncEvent,
    id: &str,
    sequence: u64,
    identity: &Identity,
    queued_at: SystemTime,
    writer: impl std::io::Write,
) -> Option<serde_json::Result<()>> {
    let kind = kind_for(event.outcome)?;
    let drift = (event.outcome == Outcome::Drift).then_some(Drift {
        file_sha256: event.file_sha256.as_deref(),
        live_hash: event.config_hash.as_deref(),
    });
    let wire = WireEvent {
        schema: SCHEMA,
        id,
        agent: identity,
        service: event.service.name(),
        kea_version: event.kea_version.as_deref(),
        kind,
        sequence,
        file: FileRef {
            path: event.file.display().to_string(),
            sha256: event.file_sha256.as_deref(),
        },
        config_hash: event.config_hash.as_deref(),
        config: event.config.as_deref(),
        text: &event.text,
        drift,
        detected_at: rfc3339(event.detected_at),
        applied_at: Some(rfc3339(event.finished_at)),
        queued_at: rfc3339(queued_at),
    };
    Some(serde_json::to_writer(writer, &wire))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kea::Service;

    fn event(outcome: Outcome, config: Option<&str>) -> SyncEvent {
        SyncEvent {
            service: Service::Dhcp4,
            outcome,
            file: "/etc/kea/kea-dhcp4.conf".into(),
            file_sha256: Some("ab".into()),
            kea_version: Some("2.2.0".into()),
            config_hash: Some("CD".into()),
            text: "config-reload: configuration live".into(),
            detected_at: SystemTime::UNIX_EPOCH,
            finished_at: SystemTime::UNIX_EPOCH,
            config: config.map(|c| RawValue::from_string(c.into()).expect("raw")),
        }
    }

    #[test]
    fn only_upstream_outcomes_are_encoded() {
        let identity = Identity::of_this_host();
        for (outcome, kind) in [
            (Outcome::Applied, Some("applied")),
            (Outcome::Rejected, Some("rejected")),
            (Outcome::Snapshot, Some("snapshot")),
            (Outcome::Drift, Some("drift")),
            (Outcome::InSync, None),
            (Outcome::Unchanged, None),
            (Outcome::Unreachable, None),
        ] {
            let body = encode(
                &event(outcome, None),
                "01J",
                1,
                &identity,
                SystemTime::UNIX_EPOCH,
            );
            let kind_seen = body.map(|b| {
                serde_json::from_slice::<serde_json::Value>(&b).expect("json")["kind"].clone()
            });
            assert_eq!(kind_seen, kind.map(serde_json::Value::from), "{outcome:?}");
        }
    }

    #[test]
    fn applied_event_carries_the_config_verbatim() {
        let identity = Identity {
            host: "dhcp1".into(),
            machine_id: "m".into(),
            version: "0.1.0".into(),
        };
        let body = encode(
            &event(Outcome::Applied, Some(r#"{"Dhcp4":{"valid-lifetime":1}}"#)),
            "01J",
            7,
            &identity,
            SystemTime::UNIX_EPOCH,
        )
        .expect("body");
        let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(value["schema"], SCHEMA);
        assert_eq!(value["sequence"], 7);
        assert_eq!(value["agent"]["host"], "dhcp1");
        assert_eq!(value["config"]["Dhcp4"]["valid-lifetime"], 1);
        assert_eq!(value["file"]["sha256"], "ab");
        assert_eq!(value["detected_at"], "1970-01-01T00:00:00.000Z");
        assert!(value.get("drift").is_none());
        let drift = encode(
            &event(Outcome::Drift, None),
            "01K",
            8,
            &identity,
            SystemTime::UNIX_EPOCH,
        )
        .expect("body");
        let drift: serde_json::Value = serde_json::from_slice(&drift).expect("json");
        assert_eq!(drift["drift"]["live_hash"], "CD");
    }
}
