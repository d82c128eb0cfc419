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
    /// The server's HA relationship (the first, for a server in several),
    /// on every event of an HA server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<Ha<S>>,
    /// Every relationship, only for a server in more than one (hub and spoke).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha_relationships: Option<Vec<Ha<S>>>,
    /// What the operator should know though the step succeeded (an edit on
    /// the standby of an HA pair, ...).
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<S>,
    pub detected_at: S,
    pub applied_at: Option<S>,
    pub queued_at: S,
}

/// One HA relationship of the server, as the step found and left it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ha<S> {
    /// `this-server-name`.
    pub this_server: S,
    /// `primary`, `secondary`, `standby` or `backup`.
    pub role: S,
    /// `hot-standby`, `load-balancing` or `passive-backup`.
    pub mode: S,
    /// The partner's name.
    pub partner: Option<S>,
    /// This server's HA state before the step, and after it.
    pub state_before: Option<S>,
    pub state_after: Option<S>,
    /// The partner's state after the step, as the partner said it.
    pub partner_state_after: Option<S>,
    /// What went wrong for HA (the reload made the server `terminated` or
    /// `partner-down`, or it did not get back to normal in time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<S>,
}

impl Ha<String> {
    fn borrowed(&self) -> Ha<&str> {
        Ha {
            this_server: &self.this_server,
            role: &self.role,
            mode: &self.mode,
            partner: self.partner.as_deref(),
            state_before: self.state_before.as_deref(),
            state_after: self.state_after.as_deref(),
            partner_state_after: self.partner_state_after.as_deref(),
            error: self.error.as_deref(),
        }
    }
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
        ha: event.ha.first().map(Ha::borrowed),
        ha_relationships: (event.ha.len() > 1).then(|| event.ha.iter().map(Ha::borrowed).collect()),
        warnings: event.warnings.iter().map(String::as_str).collect(),
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
        assert_eq!(wire.ha, None);
        assert!(wire.warnings.is_empty());
    }

    #[test]
    fn ha_and_warnings_go_on_the_wire_only_when_there_are_some() {
        let relationship = |partner: &str| Ha {
            this_server: "server2".to_string(),
            role: "standby".into(),
            mode: "hot-standby".into(),
            partner: Some(partner.into()),
            state_before: Some("hot-standby".into()),
            state_after: Some("hot-standby".into()),
            partner_state_after: Some("hot-standby".into()),
            error: None,
        };
        let mut standby = event(Outcome::Applied, Some(r#"{"Dhcp4":{}}"#));
        standby.ha = vec![relationship("server1")];
        standby.warnings = vec!["edited on the standby".into()];
        let value = encoded(&standby, 1, &Identity::of_this_host());
        assert_eq!(value["ha"]["role"], "standby");
        assert_eq!(value["ha"]["partner_state_after"], "hot-standby");
        assert!(value["ha"].get("error").is_none(), "{value}");
        assert!(value.get("ha_relationships").is_none(), "{value}");
        assert_eq!(value["warnings"][0], "edited on the standby");
        standby.ha.push(relationship("server3"));
        let value = encoded(&standby, 2, &Identity::of_this_host());
        assert_eq!(value["ha_relationships"][1]["partner"], "server3");
        let wire: Wire<String, serde_json::Value> = serde_json::from_value(value).expect("decode");
        assert_eq!(wire.ha, Some(relationship("server1")));
        let plain = encoded(&event(Outcome::Applied, None), 3, &Identity::of_this_host());
        assert!(
            plain.get("ha").is_none() && plain.get("warnings").is_none(),
            "{plain}"
        );
    }
}
