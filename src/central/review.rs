//! Every stored version reviewed: checks over a Kea config, after Stork's
//! config-review checkers (isc-projects/stork, backend/server/configreview):
//! overlapping subnets, duplicate subnet ids, reservations outside their
//! subnet or inside a dynamic pool, pools overlapping across subnets, HA
//! without lease_cmds, HA peers sharing a URL. Pure: a config in, findings
//! out; the read API and the page show them with the version.

use serde::Serialize;
use serde_json::Value;
use std::net::IpAddr;

/// One thing a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check's name, e.g. `overlapping_subnets`.
    pub check: &'static str,
    /// `error` (Kea misbehaves or refuses), `warning` (works, likely not meant).
    pub severity: &'static str,
    /// Where, as the diff names elements: `Dhcp4 › subnet4 id=2 (10.0.1.0/24)`.
    pub path: String,
    pub text: String,
}

/// An address range, as 128-bit numbers (IPv4 mapped into the low bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    first: u128,
    last: u128,
    v6: bool,
}

impl Range {
    fn overlaps(&self, other: &Range) -> bool {
        self.v6 == other.v6 && self.first <= other.last && other.first <= self.last
    }

    fn contains(&self, address: u128) -> bool {
        self.first <= address && address <= self.last
    }
}

fn number(address: IpAddr) -> (u128, bool) {
    match address {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), false),
        IpAddr::V6(v6) => (u128::from(v6), true),
    }
}

fn address(text: &str) -> Option<(u128, bool)> {
    text.trim().parse::<IpAddr>().ok().map(number)
}

/// `192.0.2.0/24` or `2001:db8::/32`.
fn prefix(text: &str) -> Option<Range> {
    let (base, length) = text.trim().split_once('/')?;
    let (start, v6) = address(base)?;
    let bits = if v6 { 128 } else { 32 };
    let length: u32 = length.trim().parse().ok().filter(|l| *l <= bits)?;
    let host_bits = bits - length;
    let mask = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    Some(Range {
        first: start & !mask,
        last: (start & !mask) | mask,
        v6,
    })
}

/// A pool: `a - b` or a prefix.
fn pool(text: &str) -> Option<Range> {
    match text.split_once('-') {
        Some((first, last)) if !text.contains('/') => {
            let ((first, v6), (last, v6b)) = (address(first)?, address(last)?);
            (v6 == v6b && first <= last).then_some(Range { first, last, v6 })
        }
        _ => prefix(text),
    }
}

/// One subnet as the checks see it.
struct Subnet<'a> {
    label: String,
    id: Option<i64>,
    range: Option<Range>,
    prefix: &'a str,
    pools: Vec<(String, Range)>,
    value: &'a Value,
}

/// Every subnet of a service map, shared networks' included.
fn subnets<'a>(service: &'a Value, list: &str) -> Vec<Subnet<'a>> {
    let mut all: Vec<&'a Value> = Vec::new();
    let mut gather = |container: &'a Value| {
        if let Some(items) = container[list].as_array() {
            all.extend(items);
        }
    };
    gather(service);
    for network in service["shared-networks"].as_array().into_iter().flatten() {
        gather(network);
    }
    all.into_iter()
        .map(|subnet| {
            let text = subnet["subnet"].as_str().unwrap_or_default();
            let id = subnet["id"].as_i64();
            let label = match id {
                Some(id) => format!("{list} id={id} ({text})"),
                None => format!("{list} {text}"),
            };
            let pools = ["pools", "pd-pools"]
                .iter()
                .flat_map(|key| subnet[*key].as_array().into_iter().flatten())
                .filter_map(|p| {
                    let text = p["pool"].as_str().or(p["prefix"].as_str())?;
                    Some((text.to_string(), pool(text)?))
                })
                .collect();
            Subnet {
                label,
                id,
                range: prefix(text),
                prefix: text,
                pools,
                value: subnet,
            }
        })
        .collect()
}

/// The findings of a stored config (its JSON text), reviewed on the
/// blocking pool: a config of tens of MB takes a while to parse. A config
/// that is not JSON has none (the store only holds JSON).
pub async fn review_stored(config_json: String) -> Vec<Finding> {
    tokio::task::spawn_blocking(move || {
        serde_json::from_str::<Value>(&config_json)
            .map(|config| review(&config))
            .unwrap_or_default()
    })
    .await
    .unwrap_or_default()
}

/// The findings of every check on `config` (`{"Dhcp4": {...}}` and the like).
pub fn review(config: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (key, list) in [("Dhcp4", "subnet4"), ("Dhcp6", "subnet6")] {
        let service = &config[key];
        if !service.is_object() {
            continue;
        }
        let all = subnets(service, list);
        subnet_checks(key, &all, &mut findings);
        reservation_checks(key, &all, &mut findings);
        ha_checks(key, service, &mut findings);
    }
    findings
}

fn subnet_checks(key: &str, all: &[Subnet], findings: &mut Vec<Finding>) {
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if let (Some(ra), Some(rb)) = (a.range, b.range)
                && ra.overlaps(&rb)
            {
                findings.push(Finding {
                    check: "overlapping_subnets",
                    severity: "error",
                    path: format!("{key} › {}", b.label),
                    text: format!("{} overlaps {} ({})", b.prefix, a.prefix, a.label),
                });
            }
            if let (Some(ia), Some(ib)) = (a.id, b.id)
                && ia == ib
            {
                findings.push(Finding {
                    check: "duplicate_subnet_ids",
                    severity: "error",
                    path: format!("{key} › {}", b.label),
                    text: format!("subnet id {ib} is also the id of {}", a.prefix),
                });
            }
            for (pa, range_a) in &a.pools {
                for (pb, range_b) in &b.pools {
                    if range_a.overlaps(range_b) {
                        findings.push(Finding {
                            check: "overlapping_pools",
                            severity: "error",
                            path: format!("{key} › {} › pool {pb}", b.label),
                            text: format!("pool {pb} overlaps pool {pa} of {}", a.label),
                        });
                    }
                }
            }
        }
    }
}

fn reservation_checks(key: &str, all: &[Subnet], findings: &mut Vec<Finding>) {
    for subnet in all {
        let Some(range) = subnet.range else {
            continue;
        };
        for reservation in subnet.value["reservations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let addresses: Vec<&str> = reservation["ip-address"]
                .as_str()
                .into_iter()
                .chain(
                    reservation["ip-addresses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str),
                )
                .collect();
            let who = [
                "hw-address",
                "duid",
                "client-id",
                "circuit-id",
                "flex-id",
                "hostname",
            ]
            .iter()
            .find_map(|k| reservation[*k].as_str().map(|v| format!("{k}={v}")))
            .unwrap_or_else(|| "reservation".into());
            for text in addresses {
                let Some((at, _)) = address(text) else {
                    continue;
                };
                let path = format!("{key} › {} › reservation {who}", subnet.label);
                if !range.contains(at) {
                    findings.push(Finding {
                        check: "reservation_outside_subnet",
                        severity: "error",
                        path,
                        text: format!("reserved address {text} is outside {}", subnet.prefix),
                    });
                } else if let Some((pool, _)) =
                    subnet.pools.iter().find(|(_, pool)| pool.contains(at))
                {
                    findings.push(Finding {
                        check: "reservation_in_pool",
                        severity: "warning",
                        path,
                        text: format!(
                            "reserved address {text} is inside dynamic pool {pool}: Kea may hand it to another client first; reserve outside the pools (and set reservations-out-of-pool)"
                        ),
                    });
                }
            }
        }
    }
}

fn ha_checks(key: &str, service: &Value, findings: &mut Vec<Finding>) {
    let hooks: Vec<&Value> = service["hooks-libraries"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let named = |name: &str| {
        hooks
            .iter()
            .any(|h| h["library"].as_str().is_some_and(|l| l.ends_with(name)))
    };
    let Some(ha) = hooks.iter().find(|h| {
        h["library"]
            .as_str()
            .is_some_and(|l| l.ends_with("libdhcp_ha.so"))
    }) else {
        return;
    };
    if !named("libdhcp_lease_cmds.so") {
        findings.push(Finding {
            check: "ha_without_lease_cmds",
            severity: "error",
            path: format!("{key} › hooks-libraries"),
            text: "the HA hook is loaded without libdhcp_lease_cmds.so: the partners cannot send each other lease updates".into(),
        });
    }
    for relationship in ha["parameters"]["high-availability"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let peers: Vec<&Value> = relationship["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        for (i, a) in peers.iter().enumerate() {
            for b in &peers[i + 1..] {
                let url = |p: &Value| {
                    p["url"]
                        .as_str()
                        .map(|u| u.trim_end_matches('/').to_string())
                };
                if let (Some(ua), Some(ub)) = (url(a), url(b))
                    && ua == ub
                {
                    findings.push(Finding {
                        check: "ha_peers_same_url",
                        severity: "error",
                        path: format!(
                            "{key} › hooks-libraries › high-availability › peer {}",
                            b["name"].as_str().unwrap_or("?")
                        ),
                        text: format!(
                            "peers {} and {} both have URL {ua}: each partner must be reached at its own address",
                            a["name"].as_str().unwrap_or("?"),
                            b["name"].as_str().unwrap_or("?")
                        ),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn checks(config: &Value) -> Vec<&'static str> {
        review(config).iter().map(|f| f.check).collect()
    }

    fn clean() -> Value {
        json!({"Dhcp4": {
            "subnet4": [
                {"id": 1, "subnet": "192.0.2.0/24", "pools": [{"pool": "192.0.2.100 - 192.0.2.200"}],
                 "reservations": [{"hw-address": "aa:bb:cc:dd:ee:01", "ip-address": "192.0.2.10"}]},
                {"id": 2, "subnet": "198.51.100.0/24", "pools": [{"pool": "198.51.100.0/25"}]}],
            "shared-networks": [{"name": "n", "subnet4": [{"id": 3, "subnet": "203.0.113.0/24"}]}],
            "hooks-libraries": [
                {"library": "/usr/lib/kea/hooks/libdhcp_lease_cmds.so"},
                {"library": "/usr/lib/kea/hooks/libdhcp_ha.so", "parameters": {"high-availability": [{
                    "peers": [{"name": "s1", "url": "http://10.0.0.1:8000/"},
                              {"name": "s2", "url": "http://10.0.0.2:8000/"}]}]}}],
        }, "Dhcp6": {"subnet6": [{"id": 1, "subnet": "2001:db8:1::/64",
            "pools": [{"pool": "2001:db8:1::100 - 2001:db8:1::1ff"}],
            "reservations": [{"duid": "01:02", "ip-addresses": ["2001:db8:1::10"]}]}]}})
    }

    #[test]
    fn a_clean_config_has_no_findings() {
        assert_eq!(review(&clean()), Vec::new());
        assert_eq!(review(&json!({"DhcpDdns": {}})), Vec::new());
    }

    #[test]
    fn each_check_trips_on_its_own_fault() {
        let mut c = clean();
        c["Dhcp4"]["shared-networks"][0]["subnet4"][0]["subnet"] = json!("192.0.2.128/25");
        assert!(
            checks(&c).contains(&"overlapping_subnets"),
            "{:?}",
            review(&c)
        );

        let mut c = clean();
        c["Dhcp4"]["subnet4"][1]["id"] = json!(1);
        assert_eq!(checks(&c), ["duplicate_subnet_ids"]);

        let mut c = clean();
        c["Dhcp4"]["subnet4"][0]["reservations"][0]["ip-address"] = json!("10.1.1.1");
        assert_eq!(checks(&c), ["reservation_outside_subnet"]);
        let finding = &review(&c)[0];
        assert_eq!(
            finding.path,
            "Dhcp4 › subnet4 id=1 (192.0.2.0/24) › reservation hw-address=aa:bb:cc:dd:ee:01"
        );

        let mut c = clean();
        c["Dhcp4"]["subnet4"][0]["reservations"][0]["ip-address"] = json!("192.0.2.150");
        assert_eq!(checks(&c), ["reservation_in_pool"]);
        let mut c = clean();
        c["Dhcp6"]["subnet6"][0]["reservations"][0]["ip-addresses"] = json!(["2001:db8:1::150"]);
        assert_eq!(checks(&c), ["reservation_in_pool"]);

        let mut c = clean();
        c["Dhcp4"]["subnet4"][1]["pools"] = json!([{"pool": "192.0.2.180 - 192.0.2.190"}]);
        assert!(
            checks(&c).contains(&"overlapping_pools"),
            "{:?}",
            review(&c)
        );

        let mut c = clean();
        c["Dhcp4"]["hooks-libraries"]
            .as_array_mut()
            .expect("hooks")
            .remove(0);
        assert_eq!(checks(&c), ["ha_without_lease_cmds"]);

        let mut c = clean();
        c["Dhcp4"]["hooks-libraries"][1]["parameters"]["high-availability"][0]["peers"][1]["url"] =
            json!("http://10.0.0.1:8000");
        assert_eq!(checks(&c), ["ha_peers_same_url"]);
    }

    #[test]
    fn ranges_read_like_kea() {
        let p = prefix("10.0.0.0/8").expect("prefix");
        assert!(p.contains(address("10.255.255.255").expect("a").0));
        assert!(!p.contains(address("11.0.0.0").expect("a").0));
        assert!(prefix("::/0").is_some());
        assert!(prefix("10.0.0.0/33").is_none());
        assert!(pool("10.0.0.9 - 10.0.0.1").is_none());
        let v4 = pool("10.0.0.0/24").expect("pool");
        let v6 = pool("::a00:0/120").expect("pool");
        assert!(!v4.overlaps(&v6), "v4 and v6 never overlap");
    }
}
