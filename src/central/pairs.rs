//! HA relationships across the fleet: the servers of one relationship are
//! paired by their HA hook parameters (the same peer names, each server's
//! `this-server-name` among them), and what Kea's manual requires to match
//! between partners is compared: subnets (ids, prefixes, pools,
//! reservations, options), shared networks, client classes and the global
//! option data. Pure over the servers' current configs (read by
//! [`load_fleet`]); `GET /v1/ha` and the `/ha` page show it.

use super::diff::{ChangeKind, diff_configs_unfolded};
use super::secrets;
use super::store::{Store, StoreError};
use super::time::format_millis;
use crate::event::wire::Ha;
use crate::kea::ha::relationships;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The members of a service map partners must agree on.
const MUST_MATCH: [&str; 6] = [
    "subnet4",
    "subnet6",
    "shared-networks",
    "client-classes",
    "option-data",
    "option-def",
];

/// One server's current config, as the store has it.
pub struct ServerConfig {
    pub server: String,
    pub service: String,
    pub config: Value,
    /// What the server's newest event reported of its HA relationships, and when.
    pub ha: Vec<Ha<String>>,
    pub seen_ms: i64,
}

/// A server in a relationship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub server: String,
    pub service: String,
    pub this_server_name: String,
    pub role: String,
    /// This server's HA state as its agent last reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported: Option<Reported>,
}

/// A member's HA state from its newest event (the config says who pairs
/// with whom; only the agent knows the state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reported {
    pub state: Option<String>,
    pub partner_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the event was received.
    pub at: String,
}

impl Reported {
    /// What `ha` (a server's newest report) says of relationship member `this_server`.
    fn of(ha: &[Ha<String>], this_server: &str, seen_ms: i64) -> Option<Reported> {
        ha.iter()
            .find(|r| r.this_server == this_server)
            .map(|r| Reported {
                state: r.state_after.clone(),
                partner_state: r.partner_state_after.clone(),
                error: r.error.clone(),
                at: format_millis(seen_ms),
            })
    }
}

/// One thing that differs between two partners.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// The element, as diffs name it: `Dhcp4 › subnet4 id=2 (10.0.1.0/24)`.
    pub element: String,
    /// What: `only on server1`, or `differs`.
    pub text: String,
    /// The value on each server (secrets hidden); absent where it is missing.
    pub values: BTreeMap<String, Value>,
}

/// One relationship with its members and how far they agree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Relationship {
    /// The peer names of the relationship.
    pub peers: Vec<String>,
    pub mode: String,
    pub servers: Vec<Member>,
    /// Peers that declare the relationship but no server of the fleet is.
    pub missing: Vec<String>,
    pub in_sync: bool,
    pub differences: Vec<Difference>,
}

/// A relationship as it is gathered: its mode and its members so far.
type Found<'a> = (String, Vec<(Member, &'a ServerConfig)>);

/// The relationships of `fleet`'s current configs.
pub fn relationships_of(fleet: &[ServerConfig]) -> Vec<Relationship> {
    // By the sorted peer names (and the service): the relationship's identity.
    let mut found: BTreeMap<(String, Vec<String>), Found> = BTreeMap::new();
    for server in fleet {
        let key = match server.service.as_str() {
            "dhcp4" => "Dhcp4",
            "dhcp6" => "Dhcp6",
            _ => continue,
        };
        let hooks = server.config[key]["hooks-libraries"].to_string();
        let Ok(raw) = RawValue::from_string(hooks) else {
            continue;
        };
        for relationship in relationships(Some(&raw)) {
            let mut peers: Vec<String> =
                relationship.peers.iter().map(|p| p.name.clone()).collect();
            peers.sort();
            let member = Member {
                server: server.server.clone(),
                service: server.service.clone(),
                this_server_name: relationship.this_server.clone(),
                role: relationship.role().to_string(),
                reported: Reported::of(&server.ha, &relationship.this_server, server.seen_ms),
            };
            found
                .entry((server.service.clone(), peers))
                .or_insert_with(|| (relationship.mode.clone(), Vec::new()))
                .1
                .push((member, server));
        }
    }
    found
        .into_iter()
        .map(|((_, peers), (mode, members))| {
            let missing: Vec<String> = peers
                .iter()
                .filter(|name| !members.iter().any(|(m, _)| m.this_server_name == **name))
                .cloned()
                .collect();
            let differences = compare(&members);
            Relationship {
                in_sync: differences.is_empty() && missing.is_empty(),
                peers,
                mode,
                servers: members.into_iter().map(|(m, _)| m).collect(),
                missing,
                differences,
            }
        })
        .collect()
}

/// Every server's current config from `store` (the one read of this
/// module; a config of tens of MB is parsed on the blocking pool).
pub async fn load_fleet(store: &Store) -> Result<Vec<ServerConfig>, StoreError> {
    let mut fleet = Vec::new();
    for summary in store.servers().await? {
        let Some(number) = summary.version else {
            continue;
        };
        let Some(stored) = store
            .version(&summary.server, &summary.service, number)
            .await?
        else {
            continue;
        };
        let text = stored.config_json;
        let config = tokio::task::spawn_blocking(move || serde_json::from_str::<Value>(&text))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(Value::Null);
        fleet.push(ServerConfig {
            server: summary.server,
            service: summary.service,
            config,
            ha: summary.ha,
            seen_ms: summary.last_seen_ms,
        });
    }
    Ok(fleet)
}

/// The fleet's relationships, from `store`'s current configs (compared on
/// the blocking pool).
pub async fn fleet_relationships(store: &Store) -> Result<Vec<Relationship>, StoreError> {
    let fleet = load_fleet(store).await?;
    Ok(
        tokio::task::spawn_blocking(move || relationships_of(&fleet))
            .await
            .unwrap_or_default(),
    )
}

/// The must-match part of a server's service map.
fn comparable(config: &ServerConfig) -> Value {
    let key = if config.service == "dhcp6" {
        "Dhcp6"
    } else {
        "Dhcp4"
    };
    let mut kept = Map::new();
    if let Some(map) = config.config[key].as_object() {
        for member in MUST_MATCH {
            if let Some(value) = map.get(member) {
                kept.insert(member.to_string(), value.clone());
            }
        }
    }
    let mut top = Map::new();
    top.insert(key.to_string(), Value::Object(kept));
    Value::Object(top)
}

/// Each member against the first (the primary when there is one).
fn compare(members: &[(Member, &ServerConfig)]) -> Vec<Difference> {
    let Some(first) = members
        .iter()
        .position(|(m, _)| m.role == "primary")
        .or((!members.is_empty()).then_some(0))
    else {
        return Vec::new();
    };
    let (base_member, base_config) = &members[first];
    let mut differences = Vec::new();
    for (index, (member, config)) in members.iter().enumerate() {
        if index == first {
            continue;
        }
        let mut a = comparable(base_config);
        let mut b = comparable(config);
        secrets::redact_pair(&mut a, &mut b);
        for change in diff_configs_unfolded(&a, &b) {
            let element = change.path_text();
            let (text, values) = match change.kind {
                ChangeKind::Removed => (
                    format!("only on {}", base_member.server),
                    BTreeMap::from([(
                        base_member.server.clone(),
                        change.before.unwrap_or_default(),
                    )]),
                ),
                ChangeKind::Added => (
                    format!("only on {}", member.server),
                    BTreeMap::from([(member.server.clone(), change.after.unwrap_or_default())]),
                ),
                ChangeKind::Changed => (
                    format!(
                        "differs between {} and {}",
                        base_member.server, member.server
                    ),
                    BTreeMap::from([
                        (
                            base_member.server.clone(),
                            change.before.unwrap_or_default(),
                        ),
                        (member.server.clone(), change.after.unwrap_or_default()),
                    ]),
                ),
            };
            differences.push(Difference {
                element,
                text,
                values,
            });
        }
    }
    differences
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server(name: &str, this: &str, subnets: Value) -> ServerConfig {
        ServerConfig {
            server: name.into(),
            service: "dhcp4".into(),
            config: json!({"Dhcp4": {
                "subnet4": subnets,
                "valid-lifetime": if this == "s1" { 4000 } else { 5000 },
                "hooks-libraries": [
                    {"library": "/usr/lib/kea/hooks/libdhcp_lease_cmds.so"},
                    {"library": "/usr/lib/kea/hooks/libdhcp_ha.so", "parameters": {"high-availability": [{
                        "this-server-name": this, "mode": "hot-standby", "peers": [
                            {"name": "s1", "url": "http://10.0.0.1:8000/", "role": "primary",
                             "basic-auth-password": "pw"},
                            {"name": "s2", "url": "http://10.0.0.2:8000/", "role": "standby"}]}]}}]}}),
            ha: Vec::new(),
            seen_ms: 0,
        }
    }

    #[test]
    fn each_member_carries_its_reported_state() {
        let mut a = server("dhcp-a", "s1", subnets());
        a.ha = vec![Ha {
            this_server: "s1".into(),
            role: "primary".into(),
            mode: "hot-standby".into(),
            partner: Some("s2".into()),
            state_before: Some("hot-standby".into()),
            state_after: Some("partner-down".into()),
            partner_state_after: Some("unknown".into()),
            error: Some("partner-down after the reload".into()),
        }];
        let fleet = [a, server("dhcp-b", "s2", subnets())];
        let relationship = &relationships_of(&fleet)[0];
        let reported = relationship.servers[0].reported.as_ref().expect("reported");
        assert_eq!(reported.state.as_deref(), Some("partner-down"));
        assert_eq!(reported.partner_state.as_deref(), Some("unknown"));
        assert!(reported.error.is_some());
        assert_eq!(relationship.servers[1].reported, None);
    }

    fn subnets() -> Value {
        json!([{"id": 1, "subnet": "192.0.2.0/24", "pools": [{"pool": "192.0.2.10 - 192.0.2.20"}]}])
    }

    #[test]
    fn partners_in_sync_apart_from_what_may_differ() {
        let fleet = [
            server("dhcp-a", "s1", subnets()),
            server("dhcp-b", "s2", subnets()),
        ];
        let found = relationships_of(&fleet);
        assert_eq!(found.len(), 1);
        let relationship = &found[0];
        assert_eq!(relationship.peers, ["s1", "s2"]);
        assert_eq!(relationship.servers.len(), 2);
        assert_eq!(relationship.servers[0].role, "primary");
        assert!(relationship.missing.is_empty());
        assert!(
            relationship.in_sync,
            "valid-lifetime may differ: {:?}",
            relationship.differences
        );
    }

    #[test]
    fn a_subnet_on_one_partner_only_is_named() {
        let mut more = subnets();
        more.as_array_mut()
            .expect("list")
            .push(json!({"id": 2, "subnet": "10.0.1.0/24"}));
        let fleet = [
            server("dhcp-a", "s1", subnets()),
            server("dhcp-b", "s2", more),
        ];
        let relationship = &relationships_of(&fleet)[0];
        assert!(!relationship.in_sync);
        let difference = &relationship.differences[0];
        assert_eq!(difference.element, "Dhcp4 › subnet4 id=2 (10.0.1.0/24)");
        assert_eq!(difference.text, "only on dhcp-b");
    }

    #[test]
    fn a_partner_missing_from_the_fleet_is_said() {
        let fleet = [server("dhcp-a", "s1", subnets())];
        let relationship = &relationships_of(&fleet)[0];
        assert_eq!(relationship.missing, ["s2"]);
        assert!(
            !relationship.in_sync,
            "a partner the central never heard of"
        );
        assert!(relationship.differences.is_empty());
    }
}
