//! How the entries of Kea's lists are recognised from one version to the next:
//! subnets by id (else prefix), pools by range, reservations by hw-address
//! (else another identifier, else ip-address), options by code/name and space.

use super::Category;
use serde_json::Value;

/// The identity of one entry of a keyed list, and how a person names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryKey {
    /// Equal identities mean "the same entry" across versions.
    pub identity: String,
    /// E.g. `subnet4 id=1 (192.0.2.0/24)`.
    pub label: String,
}

/// The category of the entries of list `key`, when they are matched by identity.
pub fn keyed_list(key: &str) -> Option<Category> {
    Some(match key {
        "subnet4" | "subnet6" => Category::Subnet,
        "shared-networks" => Category::SharedNetwork,
        "pools" | "pd-pools" => Category::Pool,
        "reservations" => Category::Reservation,
        "option-data" => Category::Option,
        "option-def" | "client-classes" | "hooks-libraries" | "loggers" | "ddns-domains"
        | "tsig-keys" | "dns-servers" => Category::Other,
        _ => return None,
    })
}

/// The category of a change to (or inside) a value under `key`.
pub fn category_of_key(key: &str) -> Category {
    keyed_list(key).unwrap_or(Category::Other)
}

/// The identity of `entry` in list `list`; `space` is the option space of the
/// daemon (`dhcp4`/`dhcp6`), the default of options without one.
pub fn entry_key(list: &str, entry: &Value, space: &str) -> Option<EntryKey> {
    let text = |name: &str| entry.get(name).and_then(scalar_text);
    let key = |identity: String, label: String| Some(EntryKey { identity, label });
    match list {
        "subnet4" | "subnet6" => match (text("id"), text("subnet")) {
            (Some(id), Some(prefix)) => {
                key(format!("id={id}"), format!("{list} id={id} ({prefix})"))
            }
            (Some(id), None) => key(format!("id={id}"), format!("{list} id={id}")),
            (None, Some(prefix)) => key(format!("subnet={prefix}"), format!("{list} {prefix}")),
            (None, None) => None,
        },
        "pools" => text("pool").map(|pool| {
            let range: String = pool.chars().filter(|c| !c.is_whitespace()).collect();
            EntryKey {
                label: format!("pool {range}"),
                identity: range,
            }
        }),
        "pd-pools" => text("prefix").map(|prefix| {
            let length = text("prefix-len").unwrap_or_default();
            EntryKey {
                identity: format!("{prefix}/{length}"),
                label: format!("pd-pool {prefix}/{length}"),
            }
        }),
        "reservations" => [
            "hw-address",
            "duid",
            "client-id",
            "circuit-id",
            "flex-id",
            "ip-address",
            "hostname",
        ]
        .into_iter()
        .find_map(|name| text(name).map(|value| (name, value)))
        .or_else(|| first_of(entry, "ip-addresses").map(|ip| ("ip-addresses", ip)))
        .map(|(name, value)| EntryKey {
            identity: format!("{name}={}", value.to_ascii_lowercase()),
            label: format!("reservation {name}={value}"),
        }),
        "option-data" | "option-def" => {
            let space = text("space").unwrap_or_else(|| space.to_string());
            let name = text("name");
            let what = if list == "option-def" {
                "option definition"
            } else {
                "option"
            };
            match (text("code"), name) {
                (Some(code), Some(name)) if list == "option-data" => key(
                    format!("{space}/code={code}"),
                    format!("{what} {name} (code {code}, space {space})"),
                ),
                (Some(code), None) => key(
                    format!("{space}/code={code}"),
                    format!("{what} code {code} (space {space})"),
                ),
                (_, Some(name)) => key(
                    format!("{space}/name={name}"),
                    format!("{what} {name} (space {space})"),
                ),
                (None, None) => None,
            }
        }
        "hooks-libraries" => text("library").map(|l| EntryKey {
            label: format!("hook {l}"),
            identity: l,
        }),
        "dns-servers" => text("ip-address").map(|ip| EntryKey {
            label: format!("dns-server {ip}"),
            identity: ip,
        }),
        _ => text("name").map(|name| EntryKey {
            label: format!("{list} {name}"),
            identity: name,
        }),
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn first_of(entry: &Value, name: &str) -> Option<String> {
    entry.get(name)?.as_array()?.first().and_then(scalar_text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(list: &str, entry: Value) -> Option<String> {
        entry_key(list, &entry, "dhcp4").map(|k| k.identity)
    }

    #[test]
    fn identities_per_list() {
        let cases = [
            (
                "subnet4",
                json!({"id": 1, "subnet": "192.0.2.0/24"}),
                Some("id=1"),
            ),
            (
                "subnet4",
                json!({"subnet": "192.0.2.0/24"}),
                Some("subnet=192.0.2.0/24"),
            ),
            (
                "pools",
                json!({"pool": "192.0.2.10 - 192.0.2.20"}),
                Some("192.0.2.10-192.0.2.20"),
            ),
            (
                "reservations",
                json!({"hw-address": "AA:bb:cc:dd:ee:ff", "ip-address": "192.0.2.5"}),
                Some("hw-address=aa:bb:cc:dd:ee:ff"),
            ),
            (
                "reservations",
                json!({"ip-address": "192.0.2.5"}),
                Some("ip-address=192.0.2.5"),
            ),
            (
                "reservations",
                json!({"ip-addresses": ["2001:db8::5"]}),
                Some("ip-addresses=2001:db8::5"),
            ),
            (
                "option-data",
                json!({"code": 6, "name": "domain-name-servers", "data": "x"}),
                Some("dhcp4/code=6"),
            ),
            (
                "option-data",
                json!({"name": "domain-name", "space": "vendor"}),
                Some("vendor/name=domain-name"),
            ),
            ("client-classes", json!({"name": "voip"}), Some("voip")),
            ("subnet4", json!({"pools": []}), None),
        ];
        for (list, entry, want) in cases {
            assert_eq!(
                identity(list, entry.clone()).as_deref(),
                want,
                "{list} {entry}"
            );
        }
    }

    #[test]
    fn labels_read_like_kea() {
        let key = entry_key(
            "subnet4",
            &json!({"id": 7, "subnet": "10.0.0.0/8"}),
            "dhcp4",
        )
        .expect("should succeed");
        assert_eq!(key.label, "subnet4 id=7 (10.0.0.0/8)");
        let key = entry_key(
            "option-data",
            &json!({"code": 3, "name": "routers"}),
            "dhcp4",
        )
        .expect("should succeed");
        assert_eq!(key.label, "option routers (code 3, space dhcp4)");
    }
}
