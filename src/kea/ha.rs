//! High availability (libdhcp_ha.so) as the agent needs it: the
//! relationships a config declares (this server, mode, peers with their
//! roles, URLs and credentials), and the states status-get and ha-heartbeat
//! report. Pure: JSON in, plain data out.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::path::PathBuf;
use std::time::Duration;

/// How long a partner may take to answer ha-heartbeat.
pub const PARTNER_TIMEOUT: Duration = Duration::from_secs(2);

/// The HA states a server is in while the pair serves as designed.
pub const NORMAL_STATES: [&str; 4] = ["hot-standby", "load-balancing", "passive-backup", "backup"];

/// Whether `state` is one of [`NORMAL_STATES`].
pub fn is_normal(state: &str) -> bool {
    NORMAL_STATES.contains(&state)
}

/// One HA relationship of a config (one element of `high-availability`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    pub this_server: String,
    pub mode: String,
    pub peers: Vec<Peer>,
    /// TLS for the connections to peers, relationship-wide in Kea.
    pub trust_anchor: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// A peer of a relationship, with what this server uses to connect to it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Peer {
    pub name: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub role: String,
    #[serde(rename = "basic-auth-user", default)]
    pub user: Option<String>,
    #[serde(rename = "basic-auth-password", default)]
    pub password: Option<String>,
    #[serde(rename = "basic-auth-password-file", default)]
    pub password_file: Option<PathBuf>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("role", &self.role)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish_non_exhaustive()
    }
}

impl Relationship {
    /// This server's own peer entry.
    pub fn me(&self) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == self.this_server)
    }

    /// This server's role in the relationship (`primary`, `secondary`,
    /// `standby`, `backup`); empty when this-server-name is no peer.
    pub fn role(&self) -> &str {
        self.me().map_or("", |peer| peer.role.as_str())
    }

    /// The partner whose state matters for this server: the other serving
    /// peer (not a backup); for a backup or a passive-backup primary, the
    /// first other peer that is the primary, else the first other peer.
    pub fn partner(&self) -> Option<&Peer> {
        let others = || self.peers.iter().filter(|p| p.name != self.this_server);
        others()
            .find(|p| {
                p.role != "backup" && self.role() != "backup" && self.mode != "passive-backup"
            })
            .or_else(|| others().find(|p| p.role == "primary"))
            .or_else(|| others().next())
    }
}

/// The relationships declared by the HA hook in a service map's
/// `hooks-libraries` (raw JSON); empty when there is no HA hook.
pub fn relationships(hooks_libraries: Option<&RawValue>) -> Vec<Relationship> {
    #[derive(Deserialize)]
    struct Hook {
        #[serde(default)]
        library: String,
        #[serde(default)]
        parameters: Option<Parameters>,
    }
    #[derive(Deserialize)]
    struct Parameters {
        #[serde(rename = "high-availability", default)]
        high_availability: Vec<Declared>,
    }
    #[derive(Deserialize)]
    struct Declared {
        #[serde(rename = "this-server-name", default)]
        this_server: String,
        #[serde(default)]
        mode: String,
        #[serde(default)]
        peers: Vec<Peer>,
        #[serde(rename = "trust-anchor", default)]
        trust_anchor: Option<PathBuf>,
        #[serde(rename = "cert-file", default)]
        cert_file: Option<PathBuf>,
        #[serde(rename = "key-file", default)]
        key_file: Option<PathBuf>,
    }
    let Some(raw) = hooks_libraries else {
        return Vec::new();
    };
    let hooks: Vec<Hook> = serde_json::from_str(raw.get()).unwrap_or_default();
    hooks
        .into_iter()
        .filter(|hook| hook.library.ends_with("libdhcp_ha.so"))
        .filter_map(|hook| hook.parameters)
        .flat_map(|parameters| parameters.high_availability)
        .map(|declared| Relationship {
            this_server: declared.this_server,
            mode: declared.mode,
            peers: declared.peers,
            trust_anchor: declared.trust_anchor,
            cert_file: declared.cert_file,
            key_file: declared.key_file,
        })
        .collect()
}

/// One relationship as status-get reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reported {
    pub mode: String,
    /// This server's name (Kea 2.4+; 2.2 names no one).
    pub server_name: Option<String>,
    pub role: String,
    pub state: String,
    /// The partner's state as this server last heard it, and how many
    /// seconds ago; None before the first answer.
    pub partner_state: Option<String>,
    pub partner_age: Option<u64>,
}

/// status-get's `high-availability` list, one entry per relationship.
pub fn reported(high_availability: Option<&Value>) -> Vec<Reported> {
    let Some(Value::Array(list)) = high_availability else {
        return Vec::new();
    };
    list.iter()
        .map(|entry| {
            let servers = &entry["ha-servers"];
            let (local, remote) = (&servers["local"], &servers["remote"]);
            let text = |value: &Value| value.as_str().map(str::to_string);
            Reported {
                mode: text(&entry["ha-mode"]).unwrap_or_default(),
                server_name: text(&local["server-name"]),
                role: text(&local["role"]).unwrap_or_default(),
                state: text(&local["state"]).unwrap_or_default(),
                partner_state: text(&remote["last-state"]).filter(|s| !s.is_empty()),
                partner_age: remote["age"].as_u64(),
            }
        })
        .collect()
}

/// The state in an ha-heartbeat reply's arguments.
pub fn heartbeat_state(arguments: &Value) -> Option<String> {
    arguments["state"].as_str().map(str::to_string)
}

/// The reported entry of `relationship`, the `index`th of the config: by
/// this server's name when Kea names it (2.4+), else by position.
pub fn reported_for<'a>(
    relationship: &Relationship,
    index: usize,
    reported: &'a [Reported],
) -> Option<&'a Reported> {
    let by_name = reported
        .iter()
        .find(|r| r.server_name.as_deref() == Some(relationship.this_server.as_str()));
    match by_name {
        Some(found) => Some(found),
        None if reported.iter().any(|r| r.server_name.is_some()) => None,
        None => reported.get(index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hooks(ha: Value) -> Box<RawValue> {
        let value = json!([
            {"library": "/usr/lib/kea/hooks/libdhcp_lease_cmds.so"},
            {"library": "/usr/lib/kea/hooks/libdhcp_ha.so", "parameters": {"high-availability": ha}},
        ]);
        RawValue::from_string(value.to_string()).expect("raw")
    }

    fn pair(mode: &str, this: &str, second_role: &str) -> Vec<Relationship> {
        relationships(Some(&hooks(json!([{
        "this-server-name": this, "mode": mode,
        "peers": [
            {"name": "s1", "url": "http://127.0.0.1:8001/", "role": "primary",
             "basic-auth-user": "ha", "basic-auth-password": "pw"},
            {"name": "s2", "url": "http://127.0.0.1:8002/", "role": second_role},
            {"name": "b1", "url": "http://127.0.0.1:8003/", "role": "backup"},
        ]}]))))
    }

    #[test]
    fn roles_and_partners_of_every_mode() {
        let cases = [
            ("hot-standby", "s1", "standby", "primary", Some("s2")),
            ("hot-standby", "s2", "standby", "standby", Some("s1")),
            ("hot-standby", "b1", "standby", "backup", Some("s1")),
            ("load-balancing", "s2", "secondary", "secondary", Some("s1")),
            ("passive-backup", "s1", "backup", "primary", Some("s2")),
            ("passive-backup", "s2", "backup", "backup", Some("s1")),
            ("hot-standby", "typo", "standby", "", Some("s1")),
        ];
        for (mode, this, second_role, role, partner) in cases {
            let found = pair(mode, this, second_role);
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].role(), role, "{mode} {this}");
            assert_eq!(
                found[0].partner().map(|p| p.name.as_str()),
                partner,
                "{mode} {this}"
            );
        }
        let me = pair("hot-standby", "s2", "standby");
        let partner = me[0].partner().expect("partner");
        assert_eq!(partner.user.as_deref(), Some("ha"));
        assert!(
            !format!("{partner:?}").contains("pw"),
            "the password never shows"
        );
    }

    #[test]
    fn no_ha_hook_no_relationship_and_a_hub_has_several() {
        assert!(relationships(None).is_empty());
        let plain = RawValue::from_string(r#"[{"library": "libdhcp_lease_cmds.so"}]"#.into());
        assert!(relationships(plain.ok().as_deref()).is_empty());
        let hub = relationships(Some(&hooks(json!([
            {"this-server-name": "hub", "mode": "hot-standby", "peers": [
                {"name": "a", "url": "http://a/", "role": "primary"},
                {"name": "hub", "url": "http://hub:1/", "role": "standby"}]},
            {"this-server-name": "hub", "mode": "hot-standby", "peers": [
                {"name": "b", "url": "http://b/", "role": "primary"},
                {"name": "hub", "url": "http://hub:2/", "role": "standby"}]},
        ]))));
        assert_eq!(hub.len(), 2);
        assert_eq!(hub[1].partner().map(|p| p.name.as_str()), Some("b"));
    }

    #[test]
    fn status_get_of_2_2_and_3_0() {
        let kea22 = json!([{"ha-mode": "hot-standby", "ha-servers": {
            "local": {"role": "primary", "scopes": [], "state": "ready"},
            "remote": {"age": 0, "last-state": "syncing", "role": "standby"}}}]);
        let found = reported(Some(&kea22));
        assert_eq!(found[0].role, "primary");
        assert_eq!(found[0].state, "ready");
        assert_eq!(found[0].partner_state.as_deref(), Some("syncing"));
        assert_eq!(found[0].server_name, None);
        let kea30 = json!([{"ha-mode": "hot-standby", "ha-servers": {
            "local": {"role": "standby", "server-name": "s2", "state": "hot-standby"},
            "remote": {"age": 3, "last-state": "", "role": "primary", "server-name": "s1"}}}]);
        let found = reported(Some(&kea30));
        assert_eq!(found[0].server_name.as_deref(), Some("s2"));
        assert_eq!(
            found[0].partner_state, None,
            "an empty last-state is unknown"
        );
        assert_eq!(found[0].partner_age, Some(3));
        assert!(reported(None).is_empty());
        assert!(reported(Some(&json!({"not": "a list"}))).is_empty());
    }

    #[test]
    fn reported_entries_match_by_name_else_by_position() {
        let rels = pair("hot-standby", "s2", "standby");
        let unnamed = vec![Reported {
            state: "hot-standby".into(),
            ..Reported::default()
        }];
        assert!(reported_for(&rels[0], 0, &unnamed).is_some());
        assert!(reported_for(&rels[0], 1, &unnamed).is_none());
        let named = vec![Reported {
            server_name: Some("other".into()),
            ..Reported::default()
        }];
        assert!(
            reported_for(&rels[0], 0, &named).is_none(),
            "named, not this one"
        );
    }

    #[test]
    fn normal_states() {
        for state in ["hot-standby", "load-balancing", "passive-backup", "backup"] {
            assert!(is_normal(state));
        }
        for state in [
            "waiting",
            "syncing",
            "ready",
            "partner-down",
            "terminated",
            "",
        ] {
            assert!(!is_normal(state));
        }
    }
}
