//! kea-sync-central closed to strangers and showing no secrets, on SQLite and a real
//! PostgreSQL: reads without, with wrong and with right credentials; an agent's token
//! reading; a config holding every kind of secret Kea has, absent from every read path
//! (servers, versions, a version, diffs, events, the page); `--store-secrets false`
//! keeping them out of the database itself; `serve` refusing open reads off loopback.
#![cfg(feature = "central")]

#[macro_use]
mod central_support;

use base64::Engine;
use central_support::{Backend, TestDb, TestServer, event};
use kea_sync_agent::central::users::Users;
use serde_json::{Value, json};

const TOKENS: &str = "kea1 agent-token-1\n";
/// Every secret value below; none may come back.
const SECRETS: [&str; 7] = [
    "lease-pw-1",
    "hosts-pw-1",
    "cb-pw-1",
    "api-pw-1",
    "ha-pw-1",
    "radius-secret-1",
    "dHNpZy1rZXk=",
];

/// A Dhcp4 config with one of every secret Kea's configs hold (`n` varies the lease
/// database password, to make a second version).
fn secret_config(lease_password: &str) -> Value {
    json!({"Dhcp4": {
        "lease-database": {"type": "postgresql", "name": "kea", "user": "kea", "password": lease_password},
        "hosts-databases": [{"type": "mysql", "name": "hosts", "password": "hosts-pw-1"}],
        "config-control": {"config-databases": [{"type": "mysql", "name": "cb", "password": "cb-pw-1"}]},
        "control-socket": {"socket-type": "http", "socket-address": "127.0.0.1", "socket-port": 8004,
            "authentication": {"type": "basic", "realm": "kea", "clients": [
                {"user": "admin", "password": "api-pw-1"}, {"user": "ro", "password-file": "/etc/kea/ro-pw"}]}},
        "hooks-libraries": [
            {"library": "/usr/lib/kea/hooks/libdhcp_ha.so", "parameters": {"high-availability": [{
                "this-server-name": "s1", "mode": "hot-standby", "peers": [
                    {"name": "s1", "url": "http://10.0.0.1:8000/", "role": "primary",
                     "basic-auth-user": "ha", "basic-auth-password": "ha-pw-1"},
                    {"name": "s2", "url": "http://10.0.0.2:8000/", "role": "standby",
                     "basic-auth-user": "ha", "basic-auth-password": "ha-pw-1"}]}]}},
            {"library": "/usr/lib/kea/hooks/libdhcp_radius.so", "parameters": {"access": {"servers": [
                {"name": "127.0.0.1", "port": 1812, "secret": "radius-secret-1"}]}}}],
        "subnet4": [{"id": 1, "subnet": "192.0.2.0/24"}],
        "valid-lifetime": 4000,
    }, "DhcpDdns": {"tsig-keys": [{"name": "key.example.", "algorithm": "HMAC-SHA256", "secret": "dHNpZy1rZXk="}]}})
}

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// GET `path` with `authorization`: status, body text, WWW-Authenticate.
async fn get(
    server: &TestServer,
    path: &str,
    authorization: Option<&str>,
) -> (u16, String, String) {
    let mut request = reqwest::Client::new().get(server.url(path));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, response.text().await.expect("body"), challenge)
}

async fn post(server: &TestServer, event: &Value) -> u16 {
    reqwest::Client::new()
        .post(server.url("/v1/events"))
        .header("authorization", "Bearer agent-token-1")
        .header("idempotency-key", event["id"].as_str().unwrap_or_default())
        .header("content-type", "application/json")
        .body(serde_json::to_vec(event).expect("json"))
        .send()
        .await
        .expect("post")
        .status()
        .as_u16()
}

/// A central with one reader (ann / "right horse"), one agent token, two versions of
/// the secret config.
async fn setup(db: &TestDb, store_secrets: bool) -> TestServer {
    let hash = bcrypt::hash("right horse", 4)
        .expect("hash")
        .replacen("$2b$", "$2y$", 1);
    let users = Users::parse(&format!("ann:{hash}\n")).expect("users");
    let central = db
        .central(Some(TOKENS), 64 << 20)
        .await
        .with_readers(Some(users))
        .with_store_secrets(store_secrets);
    let server = TestServer::start(central, None).await;
    for (n, password) in [(1, "lease-pw-1"), (2, "lease-pw-2")] {
        let applied = event(n, "dhcp1", "applied", n, Some(secret_config(password)));
        assert_eq!(post(&server, &applied).await, 201);
    }
    server
}

const READ_PATHS: [&str; 8] = [
    "/v1/servers",
    "/v1/servers/kea1/dhcp4/versions",
    "/v1/servers/kea1/dhcp4/versions/1",
    "/v1/servers/kea1/dhcp4/versions/2",
    "/v1/servers/kea1/dhcp4/diff?from=1&to=2",
    "/v1/servers/kea1/dhcp4/events",
    "/",
    "/servers/kea1/dhcp4/diff?from=1&to=2",
];

async fn reads_want_a_user(backend: Backend) {
    let db = TestDb::new(backend);
    let server = setup(&db, true).await;
    let ann = basic("ann", "right horse");
    for path in READ_PATHS {
        let (status, _, challenge) = get(&server, path, None).await;
        assert_eq!(status, 401, "{path} without credentials");
        assert!(challenge.starts_with("Basic realm="), "{path}: {challenge}");
        let (status, _, _) = get(&server, path, Some(&basic("ann", "wrong horse"))).await;
        assert_eq!(status, 401, "{path} with a wrong password");
        let (status, _, _) = get(&server, path, Some(&basic("eve", "right horse"))).await;
        assert_eq!(status, 401, "{path} as a stranger");
        let (status, text, _) = get(&server, path, Some("Bearer agent-token-1")).await;
        assert_eq!(status, 403, "{path} with an agent token: {text}");
        assert!(text.contains("agent tokens may only post"), "{text}");
        let (status, text, _) = get(&server, path, Some(&ann)).await;
        assert_eq!(status, 200, "{path} as ann: {text}");
    }
    let (status, _, _) = get(&server, "/healthz", None).await;
    assert_eq!(status, 200, "health checks stay open");
    server.stop().await;
}

async fn secrets_never_show(backend: Backend) {
    let db = TestDb::new(backend);
    let server = setup(&db, true).await;
    let ann = basic("ann", "right horse");
    for path in READ_PATHS {
        let (status, text, _) = get(&server, path, Some(&ann)).await;
        assert_eq!(status, 200, "{path}");
        for secret in SECRETS.iter().chain(["lease-pw-2"].iter()) {
            assert!(!text.contains(secret), "{secret} shows in {path}:\n{text}");
        }
    }
    let (_, text, _) = get(&server, "/v1/servers/kea1/dhcp4/versions/2", Some(&ann)).await;
    let version: Value = serde_json::from_str(&text).expect("json");
    let dhcp4 = &version["config"]["Dhcp4"];
    assert_eq!(dhcp4["lease-database"]["password"], "<secret hidden>");
    assert_eq!(dhcp4["lease-database"]["user"], "kea", "the rest stays");
    assert_eq!(
        dhcp4["control-socket"]["authentication"]["clients"][1]["password-file"], "/etc/kea/ro-pw",
        "a path to a secret is no secret"
    );
    // The diff says that the lease database password changed, not to what.
    let (_, text, _) = get(
        &server,
        "/v1/servers/kea1/dhcp4/diff?from=1&to=2",
        Some(&ann),
    )
    .await;
    let diff: Value = serde_json::from_str(&text).expect("json");
    assert!(
        diff["summary"]["changed"].as_u64().unwrap_or(0) >= 1,
        "a changed secret is a change: {diff}"
    );
    assert!(text.contains("secret hidden"), "{text}");
    // Stored as sent: the operator chose to keep them (the default).
    assert!(stored_text(&db).await.contains("lease-pw-2"));
    server.stop().await;
}

async fn store_secrets_false_keeps_them_out_of_the_database(backend: Backend) {
    let db = TestDb::new(backend);
    let server = setup(&db, false).await;
    server.stop().await;
    let stored = stored_text(&db).await;
    assert!(!stored.is_empty(), "configs were stored");
    for secret in SECRETS.iter().chain(["lease-pw-2"].iter()) {
        assert!(!stored.contains(secret), "{secret} stored");
    }
    assert!(stored.contains("<secret hidden>"));
}

/// Every stored config body as text.
async fn stored_text(db: &TestDb) -> String {
    let store = db.open().await;
    let mut text = String::new();
    for number in 1..=2 {
        if let Some(version) = store.version("kea1", "dhcp4", number).await.expect("read") {
            text.push_str(&version.config_json);
        }
    }
    text
}

on_both_backends!(
    reads_want_a_user,
    secrets_never_show,
    store_secrets_false_keeps_them_out_of_the_database
);

/// `serve` without --users-file refuses any address but loopback, and says how.
#[test]
fn open_reads_are_refused_off_loopback() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}/c.db", dir.path().display());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kea-sync-central"))
        .args(["serve", "--db", &db, "--listen", "0.0.0.0:0"])
        .output()
        .expect("run kea-sync-central");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("--users-file") && stderr.contains("user add"),
        "{stderr}"
    );
}

/// `user add` writes a line the central accepts, and changes a password in place.
#[test]
fn user_add_writes_a_reader() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("users");
    for password in ["first horse", "second horse"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kea-sync-central"))
            .args(["user", "add", "ann", "--users-file"])
            .arg(&file)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run user add");
        writeln!(child.stdin.take().expect("stdin"), "{password}").expect("write");
        let output = child.wait_with_output().expect("wait");
        assert!(output.status.success(), "{output:?}");
    }
    let users = Users::load(&file).expect("a users file the central reads");
    assert_eq!(users.len(), 1);
    assert!(users.check("ann", "second horse"));
    assert!(!users.check("ann", "first horse"));
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.starts_with("ann:$2"), "{text}");
}
