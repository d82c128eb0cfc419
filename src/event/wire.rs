//! The v1 event as it goes on the wire (docs/upstream-api.md), one struct
//! for both directions: the agent encodes [`Wire`] with borrowed strings and
//! Kea's config as raw JSON; kea-sync-central decodes the same struct with
//! owned strings. Field names and their nesting exist only here. Pure.

use super::{Kind, SCHEMA, SyncEvent};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::time::SystemTime;

/// One v1 event. `S` is the string type (`&str` to encode, `String` to
/// decode); `C` the config's (`&RawValue` to encode, raw or a value tree to
/// decode). Optional members may be absent or null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wire<S, C> {
    /// Always [`SCHEMA`]; declared first, so a body that is no event at
    /// all is refused for its schema.
    pub schema: S,
    /// ULID; also the `Idempotency-Key`.
    pub id: S,
    pub agent: Agent<S>,
    /// `dhcp4`, `dhcp6` or `d2`.
    pub service: S,
    pub kea_version: Option<S>,
    pub kind: Kind,
    /// Per agent and service, from 1, never repeated.
    pub sequence: u64,
    pub file: FileRef<S>,
    /// Kea's hash of its in-memory config after the step.
    pub config_hash: Option<S>,
    /// Kea's in-memory config, for the kinds that carry one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<C>,
    pub text: S,
    /// The disagreeing hashes, on `drift` events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift<S>>,
    /// On a `rejected` whose reload failed: whether the agent put the last
    /// good config back (config-set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<bool>,
    /// Whether Kea serves DHCP after the step, when the step touched Kea
    /// and the agent could see.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
    pub detected_at: S,
    pub applied_at: Option<S>,
    pub queued_at: S,
}

/// Who sends the events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent<S> {
    pub host: S,
    pub machine_id: S,
    pub version: S,
}

/// The Kea config file an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef<S> {
    pub path: S,
    pub sha256: Option<S>,
}

/// What disagrees on a drift: the file's content hash and Kea's live hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift<S> {
    pub file_sha256: Option<S>,
    pub live_hash: Option<S>,
}

/// This agent, as events name it.
pub type Identity = Agent<String>;

impl Agent<String> {
    /// This host's name and machine id, and the agent's version.
    pub fn of_this_host() -> Identity {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|text| text.trim().to_string())
                .unwrap_or_default()
        };
        Agent {
            host: read("/proc/sys/kernel/hostname"),
            machine_id: read("/etc/machine-id"),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    fn borrowed(&self) -> Agent<&str> {
        Agent {
            host: &self.host,
            machine_id: &self.machine_id,
            version: &self.version,
        }
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Writes the request body for `event` into `writer` (a config of tens of
/// MB is streamed, not held a second time). None for events that stay local.
pub fn encode_into(
    event: &SyncEvent,
    id: &str,
    sequence: u64,
    identity: &Identity,
    queued_at: SystemTime,
    writer: impl std::io::Write,
) -> Option<serde_json::Result<()>> {
    let kind = event.kind()?;
    let path = event.file.display().to_string();
    let (detected_at, applied_at, queued_at) = (
        rfc3339(event.detected_at),
        rfc3339(event.finished_at),
        rfc3339(queued_at),
    );
    let wire: Wire<&str, &RawValue> = Wire {
        schema: SCHEMA,
        id,
        agent: identity.borrowed(),
        service: event.service.name(),
        kea_version: event.kea_version.as_deref(),
        kind,
        sequence,
        file: FileRef {
            path: &path,
            sha256: event.file_sha256.as_deref(),
        },
        config_hash: event.config_hash.as_deref(),
        config: event.config.as_deref().filter(|_| kind.carries_config()),
        text: &event.text,
        drift: (kind == Kind::Drift).then_some(Drift {
            file_sha256: event.file_sha256.as_deref(),
            live_hash: event.config_hash.as_deref(),
        }),
        rolled_back: event.rolled_back,
        serving: event.serving,
        detected_at: &detected_at,
        applied_at: Some(&applied_at),
        queued_at: &queued_at,
    };
    Some(serde_json::to_writer(writer, &wire))
}

/// Like [`encode_into`], into a new buffer.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Outcome, example as event};

    /// `event` encoded as id `01J` at the epoch, parsed back as a value tree.
    fn encoded(event: &SyncEvent, sequence: u64, identity: &Identity) -> serde_json::Value {
        let body =
            encode(event, "01J", sequence, identity, SystemTime::UNIX_EPOCH).expect("a body");
        serde_json::from_slice(&body).expect("json")
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
        let applied = event(Outcome::Applied, Some(r#"{"Dhcp4":{"valid-lifetime":1}}"#));
        let value = encoded(&applied, 7, &identity);
        assert_eq!(value["schema"], SCHEMA);
        assert_eq!(value["sequence"], 7);
        assert_eq!(value["agent"]["host"], "dhcp1");
        assert_eq!(value["config"]["Dhcp4"]["valid-lifetime"], 1);
        assert_eq!(value["file"]["sha256"], "ab");
        assert_eq!(value["detected_at"], "1970-01-01T00:00:00.000Z");
        assert!(value.get("drift").is_none());
        let drift = event(Outcome::Drift, Some(r#"{"Dhcp4":{"valid-lifetime":2}}"#));
        let drift = encoded(&drift, 8, &identity);
        assert_eq!(drift["drift"]["live_hash"], "CD");
        assert_eq!(drift["config"]["Dhcp4"]["valid-lifetime"], 2);
    }

    #[test]
    fn a_rejected_config_never_goes_on_the_wire() {
        let rejected = event(Outcome::Rejected, Some(r#"{"Dhcp4":{}}"#));
        let value = encoded(&rejected, 1, &Identity::of_this_host());
        assert!(value.get("config").is_none(), "{value}");
    }

    #[test]
    fn decodes_what_it_encodes() {
        let identity = Identity::of_this_host();
        let body = encode(
            &event(Outcome::Snapshot, Some(r#"{"Dhcp4":{"valid-lifetime":3}}"#)),
            "01J",
            9,
            &identity,
            SystemTime::UNIX_EPOCH,
        )
        .expect("body");
        let wire: Wire<String, Box<RawValue>> = serde_json::from_slice(&body).expect("decode");
        assert_eq!(wire.kind, Kind::Snapshot);
        assert_eq!(wire.sequence, 9);
        assert_eq!(wire.agent, identity);
        assert_eq!(
            wire.config.map(|c| c.get().to_string()),
            Some(r#"{"Dhcp4":{"valid-lifetime":3}}"#.to_string())
        );
    }
}
