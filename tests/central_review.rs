//! Every stored version reviewed: a config that trips the checks and a clean one, posted
//! to a real central (SQLite and PostgreSQL); `GET .../versions/{n}` carries the findings
//! and the server's page shows the current version's.
#![cfg(feature = "central")]

#[macro_use]
mod central_support;

use central_support::{Backend, TestDb, TestServer, event};
use serde_json::{Value, json};

fn faulty() -> Value {
    json!({"Dhcp4": {
        "subnet4": [
            {"id": 1, "subnet": "192.0.2.0/24", "pools": [{"pool": "192.0.2.100 - 192.0.2.200"}],
             "reservations": [{"hw-address": "aa:bb:cc:dd:ee:01", "ip-address": "192.0.2.150"},
                              {"hw-address": "aa:bb:cc:dd:ee:02", "ip-address": "10.9.9.9"}]},
            {"id": 1, "subnet": "192.0.2.128/25"}],
        "hooks-libraries": [{"library": "/usr/lib/kea/hooks/libdhcp_ha.so", "parameters": {
            "high-availability": [{"this-server-name": "s1", "mode": "hot-standby", "peers": [
                {"name": "s1", "url": "http://10.0.0.1:8000/", "role": "primary"},
                {"name": "s2", "url": "http://10.0.0.1:8000/", "role": "standby"}]}]}}],
    }})
}

fn clean() -> Value {
    json!({"Dhcp4": {"subnet4": [{"id": 1, "subnet": "192.0.2.0/24",
        "pools": [{"pool": "192.0.2.100 - 192.0.2.200"}],
        "reservations": [{"hw-address": "aa:bb:cc:dd:ee:01", "ip-address": "192.0.2.10"}]}]}})
}

async fn get(server: &TestServer, path: &str) -> String {
    let response = reqwest::get(server.url(path)).await.expect("get");
    assert_eq!(response.status().as_u16(), 200, "{path}");
    response.text().await.expect("body")
}

async fn versions_carry_their_findings(backend: Backend) {
    let db = TestDb::new(backend);
    let server = TestServer::start(db.central(None, 64 << 20).await, None).await;
    for (n, config) in [(1, faulty()), (2, clean())] {
        let body =
            serde_json::to_vec(&event(n, "dhcp1", "applied", n, Some(config))).expect("json");
        let status = reqwest::Client::new()
            .post(server.url("/v1/events"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post")
            .status();
        assert_eq!(status.as_u16(), 201);
    }
    let first: Value =
        serde_json::from_str(&get(&server, "/v1/servers/dhcp1/dhcp4/versions/1").await)
            .expect("json");
    let checks: Vec<&str> = first["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["check"].as_str())
        .collect();
    for check in [
        "overlapping_subnets",
        "duplicate_subnet_ids",
        "reservation_in_pool",
        "reservation_outside_subnet",
        "ha_without_lease_cmds",
        "ha_peers_same_url",
    ] {
        assert!(checks.contains(&check), "{check} in {checks:?}");
    }
    let finding = &first["findings"][0];
    for key in ["check", "severity", "path", "text"] {
        assert!(
            finding[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key}: {finding}"
        );
    }
    let second: Value =
        serde_json::from_str(&get(&server, "/v1/servers/dhcp1/dhcp4/versions/2").await)
            .expect("json");
    assert_eq!(
        second["findings"],
        json!([]),
        "a clean config: an empty list"
    );
    let page = get(&server, "/servers/dhcp1/dhcp4").await;
    assert!(page.contains("Review of version 2: no findings"), "{page}");
    server.stop().await;
}

/// One partner's config of a hot-standby pair s1 (primary) + s2.
fn partner(this: &str, extra_subnet: bool) -> Value {
    let mut subnets = vec![json!({"id": 1, "subnet": "192.0.2.0/24",
        "pools": [{"pool": "192.0.2.100 - 192.0.2.200"}]})];
    if extra_subnet {
        subnets.push(json!({"id": 2, "subnet": "10.0.1.0/24"}));
    }
    json!({"Dhcp4": {
        "subnet4": subnets,
        "hooks-libraries": [
            {"library": "/usr/lib/kea/hooks/libdhcp_lease_cmds.so"},
            {"library": "/usr/lib/kea/hooks/libdhcp_ha.so", "parameters": {"high-availability": [{
                "this-server-name": this, "mode": "hot-standby", "peers": [
                    {"name": "s1", "url": "http://10.0.0.1:8000/", "role": "primary"},
                    {"name": "s2", "url": "http://10.0.0.2:8000/", "role": "standby"}]}]}}],
    }})
}

async fn post(server: &TestServer, event: &Value) {
    let status = reqwest::Client::new()
        .post(server.url("/v1/events"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(event).expect("json"))
        .send()
        .await
        .expect("post")
        .status();
    assert_eq!(status.as_u16(), 201);
}

async fn ha_pairs_in_and_out_of_sync(backend: Backend) {
    let db = TestDb::new(backend);
    let server = TestServer::start(db.central(None, 64 << 20).await, None).await;
    post(
        &server,
        &event(1, "dhcp-a", "applied", 1, Some(partner("s1", false))),
    )
    .await;
    post(
        &server,
        &event(2, "dhcp-b", "applied", 1, Some(partner("s2", false))),
    )
    .await;
    let ha: Value = serde_json::from_str(&get(&server, "/v1/ha").await).expect("json");
    let relationship = &ha["relationships"][0];
    assert_eq!(relationship["in_sync"], true, "{ha}");
    let members: Vec<(&str, &str)> = relationship["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|m| {
            (
                m["server"].as_str().unwrap_or(""),
                m["role"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(members, [("dhcp-a", "primary"), ("dhcp-b", "standby")]);
    assert_eq!(relationship["servers"][1]["this_server_name"], "s2");
    assert!(
        relationship["servers"][1].get("reported").is_none(),
        "no event carried HA state yet: {ha}"
    );
    // The standby gains a subnet the primary lacks; its agent reports the HA
    // state after the reload and warns of an edit on the standby.
    let mut edited = event(3, "dhcp-b", "applied", 2, Some(partner("s2", true)));
    edited["ha"] = json!({"this_server": "s2", "role": "standby", "mode": "hot-standby",
        "partner": "s1", "state_before": "hot-standby", "state_after": "waiting",
        "partner_state_after": "hot-standby", "error": "not back to hot-standby within 60s"});
    edited["warnings"] =
        json!(["edited on the standby s2: the primary s1 does not have this edit"]);
    post(&server, &edited).await;
    let events: Value =
        serde_json::from_str(&get(&server, "/v1/servers/dhcp-b/dhcp4/events").await).expect("json");
    let newest = &events["events"][0];
    assert_eq!(newest["ha"][0]["state_after"], "waiting", "{events}");
    assert_eq!(newest["ha"][0]["partner"], "s1", "{events}");
    assert_eq!(
        newest["warnings"][0],
        "edited on the standby s2: the primary s1 does not have this edit"
    );
    assert!(events["events"][1].get("ha").is_none(), "{events}");
    let page = get(&server, "/servers/dhcp-b/dhcp4").await;
    assert!(
        page.contains("edited on the standby s2") && page.contains("not back to hot-standby"),
        "{page}"
    );
    let ha: Value = serde_json::from_str(&get(&server, "/v1/ha").await).expect("json");
    let relationship = &ha["relationships"][0];
    assert_eq!(relationship["in_sync"], false, "{ha}");
    let difference = &relationship["differences"][0];
    assert_eq!(
        difference["element"], "Dhcp4 › subnet4 id=2 (10.0.1.0/24)",
        "{ha}"
    );
    assert_eq!(difference["text"], "only on dhcp-b");
    let reported = &relationship["servers"][1]["reported"];
    assert_eq!(reported["state"], "waiting", "{ha}");
    assert_eq!(reported["partner_state"], "hot-standby", "{ha}");
    assert!(relationship["servers"][0].get("reported").is_none(), "{ha}");
    let page = get(&server, "/ha").await;
    assert!(
        page.contains("s1 + s2") && page.contains("differs") && page.contains("only on dhcp-b"),
        "{page}"
    );
    assert!(
        page.contains("waiting") && page.contains("no event with HA state yet"),
        "{page}"
    );
    // The next event of a server without HA state clears it.
    post(
        &server,
        &event(4, "dhcp-b", "applied", 3, Some(partner("s2", false))),
    )
    .await;
    let ha: Value = serde_json::from_str(&get(&server, "/v1/ha").await).expect("json");
    assert!(
        ha["relationships"][0]["servers"][1]
            .get("reported")
            .is_none(),
        "{ha}"
    );
    server.stop().await;
}

on_both_backends!(versions_carry_their_findings, ha_pairs_in_and_out_of_sync);
