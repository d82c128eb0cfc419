//! Secrets in Kea's configs never leave the central: the values of the
//! members that hold them are replaced by a marker in every read (API,
//! page, diffs), and with `--store-secrets false` before they are stored.
//!
//! Which members: found in Kea's own example files (2.2 and 3.0) and its
//! manual: `password` (lease-database, hosts-database(s), config-databases,
//! control-socket `authentication.clients`, RADIUS servers), `secret` (DHCP-DDNS
//! `tsig-keys`, RADIUS), HA peers' `basic-auth-password`, and, to be safe,
//! any member named `*-password` or `*-secret`. Members naming a file that
//! holds a secret (`password-file`, `secret-file`, `key-file`) are paths,
//! not secrets, and stay.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// What a secret's value is replaced with.
pub const MARKER: &str = "<secret hidden>";

/// Whether member `key` holds a secret.
pub fn is_secret(key: &str) -> bool {
    matches!(key, "password" | "secret") || key.ends_with("-password") || key.ends_with("-secret")
}

/// Replaces every secret value in `config` with [`MARKER`]; returns how many.
pub fn redact(config: &mut Value) -> usize {
    let mut count = 0;
    walk(config, &mut |value| {
        *value = Value::String(MARKER.into());
        count += 1;
    });
    count
}

/// Redacts two versions of a config for a diff: equal secrets get equal
/// markers and different ones different markers (`<secret hidden #1>`), so a
/// diff says that a secret changed, never from what to what.
pub fn redact_pair(old: &mut Value, new: &mut Value) {
    let mut labels: HashMap<[u8; 32], usize> = HashMap::new();
    for config in [old, new] {
        walk(config, &mut |value| {
            let digest: [u8; 32] = Sha256::digest(value.to_string().as_bytes()).into();
            let next = labels.len() + 1;
            let label = *labels.entry(digest).or_insert(next);
            *value = Value::String(format!("<secret hidden #{label}>"));
        });
    }
}

/// Calls `hide` on the value of every secret member, at any depth.
fn walk(value: &mut Value, hide: &mut impl FnMut(&mut Value)) {
    match value {
        Value::Object(map) => {
            for (key, member) in map.iter_mut() {
                if is_secret(key) && !member.is_null() {
                    hide(member);
                } else {
                    walk(member, hide);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| walk(item, hide)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One of every kind of secret Kea's configs hold.
    fn config() -> Value {
        json!({"Dhcp4": {
            "lease-database": {"type": "postgresql", "user": "kea", "password": "lease-pw"},
            "hosts-databases": [{"type": "mysql", "password": "hosts-pw"}],
            "config-control": {"config-databases": [{"type": "mysql", "password": "cb-pw"}]},
            "control-socket": {"socket-type": "http", "authentication": {
                "type": "basic", "clients": [{"user": "admin", "password": "api-pw"},
                                             {"user": "ro", "password-file": "/etc/kea/ro"}]}},
            "hooks-libraries": [{"library": "libdhcp_ha.so", "parameters": {"high-availability": [{
                "peers": [{"name": "s1", "basic-auth-user": "ha", "basic-auth-password": "ha-pw"}]}]}},
                {"library": "libdhcp_radius.so", "parameters": {"access": {"servers": [
                    {"name": "127.0.0.1", "secret": "radius-secret"}]}}}],
        }, "DhcpDdns": {"tsig-keys": [{"name": "k", "algorithm": "HMAC-SHA256", "secret": "tsig=="},
                                      {"name": "f", "secret-file": "/etc/kea/f.key"}]}})
    }

    #[test]
    fn every_secret_is_hidden_and_paths_stay() {
        let mut redacted = config();
        assert_eq!(redact(&mut redacted), 7);
        let text = redacted.to_string();
        for secret in [
            "lease-pw",
            "hosts-pw",
            "cb-pw",
            "api-pw",
            "ha-pw",
            "radius-secret",
            "tsig==",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("/etc/kea/ro") && text.contains("/etc/kea/f.key"),
            "{text}"
        );
        assert_eq!(redacted["Dhcp4"]["lease-database"]["user"], "kea");
    }

    #[test]
    fn a_diff_sees_that_a_secret_changed_but_not_what_to() {
        let mut old = config();
        let mut new = config();
        new["Dhcp4"]["lease-database"]["password"] = json!("rotated");
        redact_pair(&mut old, &mut new);
        let (a, b) = (
            &old["Dhcp4"]["lease-database"]["password"],
            &new["Dhcp4"]["lease-database"]["password"],
        );
        assert_ne!(a, b, "the change shows");
        assert!(
            a.as_str()
                .is_some_and(|m| m.starts_with("<secret hidden #"))
        );
        assert_eq!(
            old["Dhcp4"]["hosts-databases"][0]["password"],
            new["Dhcp4"]["hosts-databases"][0]["password"],
            "an unchanged secret is no change"
        );
        assert!(!new.to_string().contains("rotated"));
    }
}
