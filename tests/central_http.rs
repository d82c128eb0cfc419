//! The central over real HTTP (reqwest against the server on 127.0.0.1:0), on
//! SQLite and on a real PostgreSQL: the upstream contract, bad input, the read
//! API, the page, and a database that goes down.
#![cfg(feature = "central")]

#[macro_use]
mod central_support;

use central_support::{Backend, TestDb, TestServer, config_a, config_b, event, gzip, ulid};
use serde_json::{Value, json};

struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
    text: String,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        headers,
        text,
    }
}

async fn post(server: &TestServer, body: Vec<u8>, headers: &[(&str, &str)]) -> Answer {
    let mut request = reqwest::Client::new()
        .post(server.url("/v1/events"))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request).await
}

async fn post_event(server: &TestServer, event: &Value, token: Option<&str>) -> Answer {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("idempotency-key", event["id"].as_str().unwrap_or(""))];
    if let Some(bearer) = &bearer {
        headers.push(("authorization", bearer));
    }
    post(
        server,
        serde_json::to_vec(event).expect("should succeed"),
        &headers,
    )
    .await
}

async fn get(server: &TestServer, path: &str) -> Answer {
    send(reqwest::Client::new().get(server.url(path))).await
}

const TOKENS: &str = "# agents\nkea-a TOKEN-A\nkea-b TOKEN-B\n";
const SMALL_LIMIT: usize = 256 * 1024;

/// Tokens, repeats, gzip, 400 naming the field, 413 before and after gzip,
/// unknown fields ignored, and nothing stored by a refused request.
async fn ingest_contract(backend: Backend) {
    let db = TestDb::new(backend);
    let server = TestServer::start(db.central(Some(TOKENS), SMALL_LIMIT).await, None).await;
    let first = event(1, "host-x", "applied", 1, Some(config_a()));

    let no_token = post_event(&server, &first, None).await;
    assert_eq!(no_token.status, 401, "{}", no_token.text);
    assert_eq!(no_token.headers["www-authenticate"], "Bearer");
    assert!(
        no_token.body["error"]
            .as_str()
            .expect("should succeed")
            .contains("bearer token")
    );
    assert_eq!(
        post_event(&server, &first, Some("TOKEN-X")).await.status,
        401
    );

    let stored = post_event(&server, &first, Some("TOKEN-A")).await;
    assert_eq!(
        (
            stored.status,
            &stored.body["server"],
            &stored.body["stored"]
        ),
        (201, &json!("kea-a"), &json!(true)),
        "{}",
        stored.text
    );
    let repeat = post_event(&server, &first, Some("TOKEN-A")).await;
    assert_eq!(
        (repeat.status, &repeat.body["stored"]),
        (200, &json!(false))
    );

    let second = serde_json::to_vec(&event(2, "host-x", "applied", 2, Some(config_b())))
        .expect("should succeed");
    let gzipped = post(
        &server,
        gzip(&second),
        &[
            ("authorization", "Bearer TOKEN-A"),
            ("content-encoding", "gzip"),
        ],
    )
    .await;
    assert_eq!(gzipped.status, 201, "{}", gzipped.text);

    let mut unknown = event(3, "host-x", "drift", 3, None);
    unknown["future_field"] = json!({"anything": [1, 2, 3]});
    unknown["agent"]["os"] = json!("linux");
    unknown["file"]["inode"] = json!(42);
    assert_eq!(
        post_event(&server, &unknown, Some("TOKEN-A")).await.status,
        201,
        "unknown fields are ignored (v1 contract)"
    );
    let events = get(&server, "/v1/servers/kea-a/dhcp4/events").await;
    assert_eq!(events.body["events"][0]["id"], json!(ulid(3)));

    let auth = [("authorization", "Bearer TOKEN-A")];
    let malformed = post(
        &server,
        b"{\"schema\": \"kea-sync-agent/event/v1\", ".to_vec(),
        &auth,
    )
    .await;
    assert_eq!(malformed.status, 400);
    assert!(
        malformed.body["error"]
            .as_str()
            .expect("should succeed")
            .contains("not JSON"),
        "{}",
        malformed.text
    );

    let mut no_host = event(4, "host-x", "applied", 4, None);
    no_host["agent"]
        .as_object_mut()
        .expect("should succeed")
        .remove("host");
    let refused = post_event(&server, &no_host, Some("TOKEN-A")).await;
    assert_eq!(
        (refused.status, &refused.body["field"]),
        (400, &json!("agent.host")),
        "{}",
        refused.text
    );
    assert!(
        refused.body["error"]
            .as_str()
            .expect("should succeed")
            .contains("`agent.host`: is required")
    );
    let mut bad_service = event(5, "host-x", "applied", 5, None);
    bad_service["service"] = json!("dhcp5");
    assert_eq!(
        post_event(&server, &bad_service, Some("TOKEN-A"))
            .await
            .body["field"],
        json!("service")
    );
    let mut bad_sequence = event(6, "host-x", "applied", 6, None);
    bad_sequence["sequence"] = json!("six");
    assert_eq!(
        post_event(&server, &bad_sequence, Some("TOKEN-A"))
            .await
            .body["field"],
        json!("sequence")
    );

    let mismatch = post(
        &server,
        serde_json::to_vec(&event(7, "h", "drift", 7, None)).expect("should succeed"),
        &[auth[0], ("idempotency-key", "01J00000000000000000000999")],
    )
    .await;
    assert_eq!(
        (mismatch.status, &mismatch.body["field"]),
        (400, &json!("id"))
    );

    let mut huge = event(8, "host-x", "applied", 8, Some(config_a()));
    huge["config"]["Dhcp4"]["comment"] = json!("x".repeat(SMALL_LIMIT));
    let too_large = post_event(&server, &huge, Some("TOKEN-A")).await;
    assert_eq!(too_large.status, 413, "{}", too_large.text);
    let bomb = post(
        &server,
        gzip(&serde_json::to_vec(&huge).expect("should succeed")),
        &[auth[0], ("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(bomb.status, 413, "{}", bomb.text);
    assert!(
        bomb.body["error"]
            .as_str()
            .expect("should succeed")
            .contains("after gzip decompression"),
        "{}",
        bomb.text
    );
    let brotli = post(
        &server,
        b"{}".to_vec(),
        &[auth[0], ("content-encoding", "br")],
    )
    .await;
    assert_eq!(brotli.status, 415);

    let stats = get(&server, "/v1/stats").await;
    assert_eq!(
        stats.body["storage"]["events"],
        json!(3),
        "only the accepted events are stored: {}",
        stats.text
    );
    assert_eq!(stats.body["storage"]["versions"], json!(2));
    server.stop().await;
}

/// The fleet, versions, one version, diffs, stats, health and the pages.
async fn read_api(backend: Backend) {
    let db = TestDb::new(backend);
    let server = TestServer::start(db.central(None, 64 << 20).await, None).await;
    let host = "kea<&>\"1\"";
    for (n, kind, config) in [
        (1, "applied", Some(config_a())),
        (2, "applied", Some(config_a())),
        (3, "applied", Some(config_b())),
        (4, "rejected", None),
        (5, "drift", None),
    ] {
        assert_eq!(
            post_event(&server, &event(n, host, kind, n, config), None)
                .await
                .status,
            201
        );
    }
    let servers = get(&server, "/v1/servers").await;
    let fleet = &servers.body["servers"][0];
    assert_eq!(
        fleet["server"],
        json!(host),
        "without tokens the server is agent.host"
    );
    assert_eq!(
        (
            &fleet["version"],
            &fleet["drift_open"],
            &fleet["reject_open"]
        ),
        (&json!(3), &json!(true), &json!(true))
    );
    assert_eq!(
        (&fleet["last_event_kind"], &fleet["last_sequence"]),
        (&json!("drift"), &json!(5))
    );
    assert_eq!(fleet["last_applied_at"], json!("2025-01-31T12:00:00.250Z"));

    let base = "/v1/servers/kea%3C%26%3E%221%22/dhcp4";
    let page = get(&server, &format!("{base}/versions?limit=2")).await;
    let numbers: Vec<&Value> = page.body["versions"]
        .as_array()
        .expect("should succeed")
        .iter()
        .map(|v| &v["number"])
        .collect();
    assert_eq!(
        (numbers, &page.body["next_before"]),
        (vec![&json!(3), &json!(2)], &json!(2)),
        "{}",
        page.text
    );
    let rest = get(&server, &format!("{base}/versions?limit=2&before=2")).await;
    assert_eq!(
        rest.body["versions"]
            .as_array()
            .expect("should succeed")
            .len(),
        1
    );
    assert_ne!(
        page.body["versions"][0]["content_hash"],
        page.body["versions"][1]["content_hash"]
    );
    let one = get(&server, &format!("{base}/versions/1")).await;
    assert_eq!(one.body["config"], config_a());
    assert_eq!(one.body["version"]["kind"], json!("applied"));
    assert_eq!(
        get(&server, &format!("{base}/versions/9")).await.status,
        404
    );
    assert_eq!(
        get(&server, &format!("{base}/versions/nine")).await.status,
        400
    );
    assert_eq!(
        get(&server, "/v1/servers/nobody/dhcp4/versions")
            .await
            .status,
        404
    );
    assert_eq!(
        get(&server, &format!("{base}/versions?limit=0"))
            .await
            .status,
        400
    );

    let diff = get(&server, &format!("{base}/diff?from=1&to=3")).await;
    assert_eq!(diff.status, 200, "{}", diff.text);
    let changes: Vec<(String, String, String)> = diff.body["changes"]
        .as_array()
        .expect("should succeed")
        .iter()
        .map(|c| {
            let path: Vec<&str> = c["path"]
                .as_array()
                .expect("should succeed")
                .iter()
                .map(|p| p.as_str().expect("should succeed"))
                .collect();
            (
                c["category"].as_str().expect("should succeed").into(),
                c["kind"].as_str().expect("should succeed").into(),
                path.join(" › "),
            )
        })
        .collect();
    let has = |category: &str, kind: &str, end: &str| {
        assert!(
            changes
                .iter()
                .any(|c| c.0 == category && c.1 == kind && c.2.ends_with(end)),
            "no {kind} {category} {end} in {changes:#?}"
        );
    };
    has("subnet", "added", "subnet4 id=3 (203.0.113.0/24)");
    has("subnet", "removed", "subnet4 id=2 (198.51.100.0/24)");
    has(
        "reservation",
        "changed",
        "reservation hw-address=aa:bb:cc:dd:ee:01 › ip-address",
    );
    has(
        "reservation",
        "removed",
        "reservation hw-address=aa:bb:cc:dd:ee:02",
    );
    has(
        "reservation",
        "added",
        "reservation hw-address=aa:bb:cc:dd:ee:03",
    );
    has(
        "option",
        "changed",
        "option domain-name-servers (code 6, space dhcp4) › data",
    );
    has(
        "option",
        "added",
        "option domain-name (code 15, space dhcp4)",
    );
    has("other", "changed", "Dhcp4 › valid-lifetime");
    assert_eq!(changes.len(), 8, "{changes:#?}");
    assert_eq!(
        diff.body["summary"],
        json!({"added": 3, "removed": 2, "changed": 3, "inherited": 0})
    );
    let no_change = get(&server, &format!("{base}/diff?from=1&to=2")).await;
    assert_eq!(no_change.body["changes"], json!([]));
    assert_eq!(get(&server, &format!("{base}/diff?to=2")).await.status, 400);

    let stats = get(&server, "/v1/stats").await;
    assert_eq!(
        (
            &stats.body["storage"]["versions"],
            &stats.body["storage"]["configs"]
        ),
        (&json!(3), &json!(2))
    );
    assert_eq!(get(&server, "/healthz").await.body["status"], json!("ok"));

    let escaped = "kea&lt;&amp;&gt;&quot;1&quot;";
    let fleet_page = get(&server, "/").await;
    assert!(
        fleet_page.headers["content-type"]
            .to_str()
            .expect("should succeed")
            .starts_with("text/html")
    );
    assert!(
        fleet_page.text.contains(escaped) && !fleet_page.text.contains(host),
        "{}",
        fleet_page.text
    );
    assert!(fleet_page.text.contains("edit rejected"));
    // The rejection is open (no applied config since), and the count says it counts open ones.
    assert!(
        fleet_page.text.contains(">1 open rejection</span>")
            && fleet_page.text.contains(">0 open drifts</span>"),
        "{}",
        fleet_page.text
    );
    let server_page = get(&server, "/servers/kea%3C%26%3E%221%22/dhcp4").await;
    assert_eq!(server_page.status, 200);
    assert!(server_page.text.contains(escaped) && server_page.text.contains("diff with 2"));
    // Event sequence numbers and version numbers are named apart.
    for said in [
        "event #5, drift: drift #5",
        "version 3 (made by event #3)",
        ">Event #</th><th>Made version</th>",
    ] {
        assert!(
            server_page.text.contains(said),
            "{said}: {}",
            server_page.text
        );
    }
    let diff_page = get(
        &server,
        "/servers/kea%3C%26%3E%221%22/dhcp4/diff?from=1&to=3",
    )
    .await;
    assert!(
        diff_page.text.contains("subnet4 id=3 (203.0.113.0/24)"),
        "{}",
        diff_page.text
    );
    assert!(diff_page.text.contains("Reservations (3)"));
    assert_eq!(get(&server, "/servers/nobody/dhcp4").await.status, 404);
    server.stop().await;
}

/// A 5 MB config, plain and gzipped: stored once, two versions, compressed at rest.
async fn large_configs(backend: Backend) {
    let db = TestDb::new(backend);
    let server = TestServer::start(db.central(None, 64 << 20).await, None).await;
    let config = central_support::large_config(5000, 1);
    let plain = serde_json::to_vec(&event(1, "kea-big", "snapshot", 1, Some(config.clone())))
        .expect("event");
    assert!(plain.len() > 4_000_000, "{} bytes", plain.len());
    assert_eq!(post(&server, plain, &[]).await.status, 201);
    let second =
        serde_json::to_vec(&event(2, "kea-big", "applied", 2, Some(config))).expect("event");
    assert_eq!(
        post(&server, gzip(&second), &[("content-encoding", "gzip")])
            .await
            .status,
        201
    );
    let stats = get(&server, "/v1/stats").await.body;
    let storage = &stats["storage"];
    assert_eq!(
        (&storage["versions"], &storage["configs"]),
        (&json!(2), &json!(1))
    );
    let (stored, json) = (
        storage["config_bytes"].as_i64().expect("bytes"),
        storage["config_json_bytes"].as_i64().expect("bytes"),
    );
    assert!(json > 4_000_000 && stored * 4 < json, "{stats}");
    let version = get(&server, "/v1/servers/kea-big/dhcp4/versions/2").await;
    assert_eq!(
        version.body["config"]["Dhcp4"]["subnet4"]
            .as_array()
            .map(Vec::len),
        Some(5000)
    );
    server.stop().await;
}

on_both_backends!(ingest_contract, read_api, large_configs);

/// Kea's config-get as a person's one global edit leaves it: the new
/// valid-lifetime repeated in every subnet that inherits it. Subnet 4 has a
/// value of its own that was changed too; subnet 5 went elsewhere.
fn inheriting(global: u64, own: u64, elsewhere: u64) -> Value {
    json!({"Dhcp4": {
        "valid-lifetime": global,
        "subnet4": [
            {"id": 1, "subnet": "192.0.2.0/24", "valid-lifetime": global},
            {"id": 2, "subnet": "198.51.100.0/24", "valid-lifetime": global},
            {"id": 3, "subnet": "203.0.113.0/24", "valid-lifetime": global},
            {"id": 4, "subnet": "10.0.4.0/24", "valid-lifetime": own},
            {"id": 5, "subnet": "10.0.5.0/24", "valid-lifetime": elsewhere}
        ]
    }})
}

/// One global edit counts once, its inherited copies listed under it, on the
/// API and on the page; own values that changed stay changes of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inherited_values_follow_their_global() {
    let db = TestDb::new(Backend::Sqlite);
    let server = TestServer::start(db.central(None, 64 << 20).await, None).await;
    for (n, config) in [
        (1, inheriting(4000, 3000, 4000)),
        (2, inheriting(7200, 3600, 5000)),
    ] {
        let event = event(n, "kea-lifetimes", "applied", n, Some(config));
        assert_eq!(post_event(&server, &event, None).await.status, 201);
    }
    let diff = get(&server, "/v1/servers/kea-lifetimes/dhcp4/diff?from=1&to=2").await;
    assert_eq!(diff.status, 200, "{}", diff.text);
    assert_eq!(
        diff.body["summary"],
        json!({"added": 0, "removed": 0, "changed": 3, "inherited": 3}),
        "{}",
        diff.text
    );
    // Stored configs are canonical (keys sorted): the subnets come first.
    let changes = diff.body["changes"].as_array().expect("changes");
    let (global, own) = changes.split_last().expect("changes");
    assert_eq!(
        (
            &global["path"],
            &global["kind"],
            &global["before"],
            &global["after"]
        ),
        (
            &json!(["Dhcp4", "valid-lifetime"]),
            &json!("changed"),
            &json!(4000),
            &json!(7200)
        )
    );
    let follower =
        |label: &str| json!({"category": "subnet", "path": ["Dhcp4", label, "valid-lifetime"]});
    assert_eq!(
        global["followed_by"],
        json!([
            follower("subnet4 id=1 (192.0.2.0/24)"),
            follower("subnet4 id=2 (198.51.100.0/24)"),
            follower("subnet4 id=3 (203.0.113.0/24)")
        ])
    );
    let own_values: Vec<(&Value, &Value, &Value)> = own
        .iter()
        .map(|c| (&c["path"][1], &c["before"], &c["after"]))
        .collect();
    assert_eq!(
        own_values,
        [
            (
                &json!("subnet4 id=4 (10.0.4.0/24)"),
                &json!(3000),
                &json!(3600)
            ),
            (
                &json!("subnet4 id=5 (10.0.5.0/24)"),
                &json!(4000),
                &json!(5000)
            ),
        ]
    );
    assert!(
        own.iter().all(|c| c.get("followed_by").is_none()),
        "{}",
        diff.text
    );

    let page = get(&server, "/servers/kea-lifetimes/dhcp4/diff?from=1&to=2").await;
    assert_eq!(page.status, 200);
    for said in [
        "0 added, 0 removed, 3 changed (3 inherited values followed along)",
        "<summary>followed by 3 subnets</summary>",
        "<li>Dhcp4 › subnet4 id=2 (198.51.100.0/24)</li>",
        "Other settings (1)",
        "Subnets (2)",
    ] {
        assert!(page.text.contains(said), "{said}: {}", page.text);
    }
    assert!(!page.text.contains("{'added'"), "{}", page.text);
    server.stop().await;
}

/// PostgreSQL stopped under the central: 503 with Retry-After (the agent
/// retries), nothing half-stored; started again: the retry is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_answers_503_then_recovers() {
    let db = TestDb::new(Backend::Postgres);
    let server = TestServer::start(db.central(None, 64 << 20).await, None).await;
    assert_eq!(
        post_event(
            &server,
            &event(1, "kea1", "applied", 1, Some(config_a())),
            None
        )
        .await
        .status,
        201
    );
    let pg = db.postgres.as_ref().expect("should succeed");
    pg.stop();
    let next = event(2, "kea1", "applied", 2, Some(config_b()));
    let down = post_event(&server, &next, None).await;
    assert_eq!(down.status, 503, "{}", down.text);
    assert_eq!(down.headers["retry-after"], "5");
    assert!(
        down.body["error"]
            .as_str()
            .expect("should succeed")
            .contains("postgres database is unavailable"),
        "{}",
        down.text
    );
    assert_eq!(get(&server, "/healthz").await.status, 503);
    assert_eq!(get(&server, "/v1/servers").await.status, 503);
    pg.start_again();
    let retried = post_event(&server, &next, None).await;
    assert_eq!(retried.status, 201, "{}", retried.text);
    let stats = get(&server, "/v1/stats").await;
    assert_eq!(
        (
            &stats.body["storage"]["events"],
            &stats.body["storage"]["versions"]
        ),
        (&json!(2), &json!(2))
    );
    server.stop().await;
}

/// An SQLite file on a full filesystem: 503, and every stored event is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_full_answers_503_and_stores_nothing_half() {
    let mount = tempfile::tempdir().expect("should succeed");
    let path = mount.path().display().to_string();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs", &path])
        .status();
    assert!(
        mounted.is_ok_and(|s| s.success()),
        "mounting a small tmpfs needs root (run the tests as root, like scripts/test)"
    );
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(path.clone());
    let url = kea_sync_agent::central::dburl::DbUrl::parse(&format!("sqlite://{path}/central.db"))
        .expect("should succeed");
    let store = kea_sync_agent::central::store::Store::open(&url, 1)
        .await
        .expect("should succeed");
    let central = kea_sync_agent::central::ingest::Central::new(store, None, 64 << 20);
    let server = TestServer::start(central, None).await;
    let mut stored = 0;
    let mut full = None;
    for n in 1..200u32 {
        // Configs that hardly compress: xorshift noise, distinct per event.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(n);
        let noise: String = (0..40_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b'a' + (seed % 26) as u8)
            })
            .collect();
        let answer = post_event(
            &server,
            &event(
                n,
                "kea1",
                "applied",
                n,
                Some(json!({"Dhcp4": {"comment": noise}})),
            ),
            None,
        )
        .await;
        match answer.status {
            201 => stored += 1,
            503 => {
                full = Some(answer);
                break;
            }
            other => panic!("unexpected {other}: {}", answer.text),
        }
    }
    let full = full.expect("the filesystem never filled up");
    assert!(
        full.body["error"]
            .as_str()
            .expect("should succeed")
            .contains("sqlite database is unavailable"),
        "{}",
        full.text
    );
    let stats = server.central.store.stats().await.expect("should succeed");
    assert_eq!(
        (stats.events, stats.versions, stats.configs),
        (stored, stored, stored),
        "nothing half-stored"
    );
    server.stop().await;
}
