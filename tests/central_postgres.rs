//! PostgreSQL for real deployments: TLS to the database (a real cluster with
//! `ssl=on` whose pg_hba.conf refuses plain TCP), and two centrals sharing one
//! database, starting together and taking the same events side by side.

#[macro_use]
mod central_support;
mod tls_support;

use central_support::{TempPostgres, TestServer, event, ulid};
use kea_sync_agent::central::dburl::DbUrl;
use kea_sync_agent::central::ingest::Central;
use kea_sync_agent::central::store::{Store, StoreError};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use tls_support::make_certs;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

/// POSTs `event` as an agent does; the status.
fn post(client: &reqwest::Client, server: &TestServer, event: &Value) -> reqwest::RequestBuilder {
    client
        .post(server.url("/v1/events"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(event).expect("JSON"))
}

async fn get_json(server: &TestServer, path: &str) -> Value {
    let text = reqwest::get(server.url(path))
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
}

async fn open(url: &str) -> Result<Store, StoreError> {
    Store::open(&DbUrl::parse(url).expect("URL"), 2).await
}

/// Opens `url`, stores event `n` with a config and reads it back.
async fn round_trip(url: &str, n: u32) {
    let store = open(url)
        .await
        .unwrap_or_else(|e| panic!("{url} should open: {e}"));
    let central = Central::new(store, None, 1 << 20);
    let server = TestServer::start(central, None).await;
    let config = json!({"Dhcp4": {"valid-lifetime": 4000, "subnet4": []}});
    let posted = post(
        &reqwest::Client::new(),
        &server,
        &event(n, "kea1", "applied", n, Some(config)),
    )
    .send()
    .await
    .expect("post");
    assert_eq!(posted.status(), 201, "{url}");
    let servers = get_json(&server, "/v1/servers").await;
    assert_eq!(servers["servers"][0]["last_event_id"], ulid(n), "{servers}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_postgresql_verified_and_required() {
    let certs = make_certs("central test CA", &["localhost"]);
    let pg = TempPostgres::start_tls(&certs.server_cert_pem, &certs.server_key_pem);
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = write(dir.path(), "ca.pem", &certs.ca_pem);
    let other_ca = write(
        dir.path(),
        "other-ca.pem",
        &make_certs("another CA", &["localhost"]).ca_pem,
    );
    let port = pg.port();
    let base =
        |host: &str, query: &str| format!("postgres://postgres@{host}:{port}/postgres?{query}");

    // The server takes TLS only: a plain connection is refused by pg_hba.conf.
    let plain = open(&base("localhost", "sslmode=disable"))
        .await
        .err()
        .expect("plain TCP must be refused");
    assert!(plain.to_string().contains("no encryption"), "{plain}");

    // verify-full: the CA signed it and it names localhost.
    let full = format!("sslmode=verify-full&sslrootcert={}", ca.display());
    round_trip(&base("localhost", &full), 1).await;
    // The certificate does not name 127.0.0.1: verify-full refuses, verify-ca takes it.
    let by_address = open(&base("127.0.0.1", &full))
        .await
        .err()
        .expect("verify-full must check the name");
    let text = by_address.to_string();
    assert!(text.contains("certificate"), "{text}");
    assert!(text.contains("verify-ca skips the name"), "{text}");
    assert!(!text.contains("no encryption"), "{text}");
    let ca_only = format!("sslmode=verify-ca&sslrootcert={}", ca.display());
    round_trip(&base("127.0.0.1", &ca_only), 2).await;

    // A CA that did not sign it: refused, naming the file to check.
    let wrong = format!("sslmode=verify-full&sslrootcert={}", other_ca.display());
    let refused = open(&base("localhost", &wrong))
        .await
        .err()
        .expect("an unknown issuer must be refused");
    let text = refused.to_string();
    assert!(text.contains("UnknownIssuer"), "{text}");
    assert!(text.contains(&other_ca.display().to_string()), "{text}");

    // require: encrypted, nothing verified (libpq's meaning without sslrootcert).
    round_trip(&base("127.0.0.1", "sslmode=require"), 3).await;

    // A missing CA file is named before any connection is tried.
    let missing = open(&base(
        "localhost",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    ))
    .await
    .err()
    .expect("a missing CA file must be refused");
    assert!(
        missing.to_string().contains("/nonexistent/ca.pem"),
        "{missing}"
    );
}

/// Opens two stores on `url` at the same moment: both migrate (one waits for
/// the other's advisory lock) and both come up.
async fn open_together(url: &str) -> (Store, Store) {
    let (a, b) = tokio::join!(open(url), open(url));
    (
        a.unwrap_or_else(|e| panic!("first central: {e}")),
        b.unwrap_or_else(|e| panic!("second central: {e}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_centrals_on_one_postgresql() {
    let pg = TempPostgres::start();
    // Several fresh databases make the race at start likely, not a matter of luck.
    let admin = open(&pg.url()).await.expect("the cluster's own database");
    drop(admin);
    for n in 1..=4 {
        let created = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--", "psql", "-q", "-h"])
            .arg(pg.url().rsplit_once("host=").expect("socket dir").1)
            .args(["-p", &pg.port().to_string(), "-c"])
            .arg(format!("CREATE DATABASE fresh{n}"))
            .output()
            .expect("psql");
        assert!(created.status.success(), "{created:?}");
    }
    let url = |n: u32| pg.url().replace("/postgres?", &format!("/fresh{n}?"));
    for n in 1..=3 {
        open_together(&url(n)).await;
    }
    let (a, b) = open_together(&url(4)).await;
    let a = TestServer::start(Central::new(a, None, 1 << 20), None).await;
    let b = TestServer::start(Central::new(b, None, 1 << 20), None).await;

    // The same 40 events (two servers, configs changing) posted to both at once,
    // as an agent retrying through a load balancer would.
    let client = reqwest::Client::new();
    let events: Vec<Value> = (1..=40)
        .map(|n| {
            let host = if n % 2 == 0 { "kea-a" } else { "kea-b" };
            let config = json!({"Dhcp4": {"valid-lifetime": 1000 + n, "subnet4": []}});
            event(n, host, "applied", n, Some(config))
        })
        .collect();
    let mut posts = tokio::task::JoinSet::new();
    for event in &events {
        for server in [&a, &b] {
            let request = post(&client, server, event);
            let id = event["id"].as_str().expect("id").to_string();
            posts.spawn(async move { (id, request.send().await.expect("post").status()) });
        }
    }
    let mut created = std::collections::HashMap::<String, (u32, u32)>::new();
    while let Some(done) = posts.join_next().await {
        let (id, status) = done.expect("task");
        let entry = created.entry(id).or_default();
        match status.as_u16() {
            201 => entry.0 += 1,
            200 => entry.1 += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    for n in 1..=40 {
        assert_eq!(created[&ulid(n)], (1, 1), "event {n}: (201s, 200s)");
    }
    // Each server's 20 versions numbered 1..=20, whichever central stored them.
    for host in ["kea-a", "kea-b"] {
        let versions = get_json(&a, &format!("/v1/servers/{host}/dhcp4/versions?limit=100")).await;
        let mut numbers: Vec<i64> = versions["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .map(|v| v["number"].as_i64().expect("number"))
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=20).collect::<Vec<_>>(), "{host}");
    }
    let stats = get_json(&b, "/v1/stats").await;
    assert_eq!(stats["storage"]["events"], 40, "{stats}");
    assert_eq!(stats["storage"]["versions"], 40, "{stats}");
    a.stop().await;
    b.stop().await;
}
