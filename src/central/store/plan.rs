//! What storing one event writes, decided apart from any database: the
//! statements of its one transaction.

use super::row::{Param, Step};
use super::sql;
use crate::central::event::Event;
use crate::event::Kind;

/// A config body ready for the store.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigBody {
    /// SHA-256 of the canonical JSON.
    pub hash: String,
    /// Length of the canonical JSON.
    pub json_bytes: i64,
    /// The gzip-compressed canonical JSON; `None` when the store already has it.
    pub gzip: Option<Vec<u8>>,
}

/// One event as the store receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The server's identity: the token's name, else `agent.host`.
    pub server: String,
    /// The event (its `config` already taken out into `config`).
    pub event: Event,
    pub config: Option<ConfigBody>,
    pub received_ms: i64,
}

/// The open flags an event of `kind` leaves on a server that had none:
/// `(drift_open, reject_open)`. `UPSERT_SERVER` keeps the other flag on merge.
pub fn raised_flags(kind: Kind) -> (i64, i64) {
    match kind {
        Kind::Drift => (1, 0),
        Kind::Rejected => (0, 1),
        Kind::Applied | Kind::Snapshot => (0, 0),
    }
}

/// The statements that store `incoming`, in order: config body, event (the
/// repeat check), server state, version.
pub fn ingest_steps(incoming: Incoming) -> Vec<Step> {
    let Incoming {
        server,
        event,
        config,
        received_ms,
    } = incoming;
    let has_version = config.is_some();
    let (content_hash, new_body) = match config {
        Some(ConfigBody {
            hash,
            json_bytes,
            gzip,
        }) => (
            Some(hash.clone()),
            gzip.map(|gzip| (hash, json_bytes, gzip)),
        ),
        None => (None, None),
    };
    let applied_ms = event.applied_at.as_ref().map(|t| t.millis);
    let ha = json_list(&event.ha);
    let mut steps = Vec::with_capacity(4);
    if let Some((hash, json_bytes, gzip)) = new_body {
        steps.push(Step {
            sql: sql::INSERT_CONFIG,
            params: vec![
                Param::Text(hash),
                Param::Int(json_bytes),
                Param::Bytes(gzip),
                Param::Int(received_ms),
            ],
            must_insert: false,
        });
    }
    steps.push(Step {
        sql: sql::INSERT_EVENT,
        params: vec![
            Param::Text(event.id.clone()),
            Param::Text(server.clone()),
            Param::Text(event.service.clone()),
            Param::Text(event.kind.as_str().to_string()),
            Param::Int(event.sequence),
            Param::Text(event.agent_host.clone()),
            Param::Text(event.agent_machine_id.clone()),
            Param::Text(event.agent_version.clone()),
            Param::OptText(event.kea_version.clone()),
            Param::Text(event.file_path.clone()),
            Param::OptText(event.file_sha256.clone()),
            Param::OptText(event.config_hash.clone()),
            Param::OptText(content_hash.clone()),
            Param::Text(event.text.clone()),
            Param::OptText(event.drift_file_sha256.clone()),
            Param::OptText(event.drift_live_hash.clone()),
            Param::Text(event.detected_at.text.clone()),
            Param::OptText(event.applied_at.as_ref().map(|t| t.text.clone())),
            Param::Text(event.queued_at.text.clone()),
            Param::Int(event.detected_at.millis),
            Param::Int(received_ms),
            Param::OptInt(event.rolled_back.map(i64::from)),
            Param::OptInt(event.serving.map(i64::from)),
            Param::OptText(ha.clone()),
            Param::OptText(json_list(&event.warnings)),
        ],
        must_insert: true,
    });
    let (drift_open, reject_open) = raised_flags(event.kind);
    let last_applied_ms =
        (event.kind == Kind::Applied).then_some(applied_ms.unwrap_or(event.detected_at.millis));
    steps.push(Step {
        sql: sql::UPSERT_SERVER,
        params: vec![
            Param::Text(server.clone()),
            Param::Text(event.service.clone()),
            Param::Int(i64::from(has_version)),
            Param::OptInt(has_version.then_some(1)),
            Param::OptText(content_hash.clone()),
            Param::OptText(event.config_hash.clone()),
            Param::OptText(event.kea_version.clone()),
            Param::Text(event.agent_host.clone()),
            Param::Text(event.agent_version.clone()),
            Param::OptInt(last_applied_ms),
            Param::Int(received_ms),
            Param::Text(event.kind.as_str().to_string()),
            Param::Text(event.id.clone()),
            Param::Int(event.sequence),
            Param::Text(event.text.clone()),
            Param::Int(drift_open),
            Param::Int(reject_open),
            Param::OptText(ha),
        ],
        must_insert: false,
    });
    if let Some(hash) = content_hash {
        steps.push(Step {
            sql: sql::INSERT_VERSION,
            params: vec![
                Param::Text(server),
                Param::Text(event.service.clone()),
                Param::Text(event.id.clone()),
                Param::Text(hash),
                Param::Text(event.kind.as_str().to_string()),
                Param::OptText(event.config_hash.clone()),
                Param::Int(event.detected_at.millis),
                Param::OptInt(applied_ms),
                Param::Int(received_ms),
            ],
            must_insert: false,
        });
    }
    steps
}

/// A list as stored: JSON text, NULL (`None`) when empty.
fn json_list<T: serde::Serialize>(items: &[T]) -> Option<String> {
    (!items.is_empty())
        .then(|| serde_json::to_string(items).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::central::event::Timestamp;

    fn event(kind: Kind) -> Event {
        let at = Timestamp {
            text: "2025-01-31T12:00:00Z".into(),
            millis: 1_738_324_800_000,
        };
        Event {
            id: "01HZY5P6J8K9M0N1P2Q3R4S5T6".into(),
            agent_host: "kea1".into(),
            agent_machine_id: String::new(),
            agent_version: "0.1.0".into(),
            service: "dhcp4".into(),
            kea_version: None,
            kind,
            sequence: 1,
            file_path: "/etc/kea/kea-dhcp4.conf".into(),
            file_sha256: None,
            config_hash: None,
            config: None,
            text: String::new(),
            drift_file_sha256: None,
            drift_live_hash: None,
            detected_at: at.clone(),
            applied_at: None,
            queued_at: at,
            rolled_back: None,
            serving: None,
            ha: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn sqls(steps: &[Step]) -> Vec<&'static str> {
        steps.iter().map(|s| s.sql).collect()
    }

    #[test]
    fn a_new_config_is_stored_before_its_event_and_version() {
        let config = ConfigBody {
            hash: "h".into(),
            json_bytes: 2,
            gzip: Some(vec![1]),
        };
        let incoming = Incoming {
            server: "kea1".into(),
            event: event(Kind::Applied),
            config: Some(config),
            received_ms: 5,
        };
        let steps = ingest_steps(incoming);
        assert_eq!(
            sqls(&steps),
            [
                sql::INSERT_CONFIG,
                sql::INSERT_EVENT,
                sql::UPSERT_SERVER,
                sql::INSERT_VERSION
            ]
        );
        assert_eq!(steps.iter().filter(|s| s.must_insert).count(), 1);
        assert!(steps[1].must_insert);
    }

    #[test]
    fn a_known_config_is_only_referenced() {
        let config = ConfigBody {
            hash: "h".into(),
            json_bytes: 2,
            gzip: None,
        };
        let incoming = Incoming {
            server: "kea1".into(),
            event: event(Kind::Snapshot),
            config: Some(config),
            received_ms: 5,
        };
        assert_eq!(
            sqls(&ingest_steps(incoming)),
            [sql::INSERT_EVENT, sql::UPSERT_SERVER, sql::INSERT_VERSION]
        );
    }

    #[test]
    fn events_without_config_make_no_version() {
        for kind in [Kind::Rejected, Kind::Drift, Kind::Applied] {
            let incoming = Incoming {
                server: "kea1".into(),
                event: event(kind),
                config: None,
                received_ms: 5,
            };
            assert_eq!(
                sqls(&ingest_steps(incoming)),
                [sql::INSERT_EVENT, sql::UPSERT_SERVER]
            );
        }
    }

    #[test]
    fn flags_raised_by_each_kind() {
        assert_eq!(raised_flags(Kind::Drift), (1, 0));
        assert_eq!(raised_flags(Kind::Rejected), (0, 1));
        assert_eq!(raised_flags(Kind::Applied), (0, 0));
        assert_eq!(raised_flags(Kind::Snapshot), (0, 0));
    }
}
