//! The web page in a real browser: headless Chromium renders the fleet, a
//! server's history and a diff; screenshots land in target/tmp for a look.
#![cfg(feature = "central")]

mod central_support;

use central_support::{Backend, TestDb, TestServer, config_a, config_b, event};
use std::path::PathBuf;
use std::process::Command;

fn chromium(args: &[&str], url: &str) -> std::process::Output {
    let profile = tempfile::tempdir().expect("should succeed");
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
        ])
        .args([
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output();
    output.unwrap_or_else(|e| {
        panic!("chromium is not installed ({e}): run scripts/install-deps as root")
    })
}

/// A screenshot of `path` in target/tmp/central-screenshots/NAME.png, checked to be a
/// PNG of some size.
fn screenshot(server: &TestServer, name: &str, path: &str) {
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("central-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let file = shots.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&file);
    let output = chromium(
        &[&format!("--screenshot={}", file.display())],
        &server.url(path),
    );
    let png = std::fs::read(&file).unwrap_or_else(|_| {
        panic!(
            "no screenshot of {path}: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{path}: {} bytes",
        png.len()
    );
    eprintln!("screenshot of {path}: {}", file.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_in_headless_chromium() {
    let db = TestDb::new(Backend::Sqlite);
    let central = db.central(None, 64 << 20).await;
    for (n, host, kind, config) in [
        (1, "kea-north", "applied", Some(config_a())),
        (2, "kea-north", "applied", Some(config_b())),
        (3, "kea-north", "rejected", None),
        (4, "kea-south<script>", "snapshot", Some(config_a())),
        (5, "kea-south<script>", "drift", None),
        (6, "kea-east", "snapshot", Some(config_b())),
    ] {
        let body = serde_json::to_vec(&event(n, host, kind, n, config)).expect("should succeed");
        central
            .ingest(&Default::default(), body.into())
            .await
            .expect("should succeed");
    }
    let server = TestServer::start(central, None).await;

    let dom = chromium(&["--dump-dom"], &server.url("/"));
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("kea-north") && dom.contains("kea-east"),
        "{dom}"
    );
    assert!(
        dom.contains("kea-south&lt;script&gt;") && !dom.contains("kea-south<script>"),
        "{dom}"
    );
    assert!(dom.contains("edit rejected") && dom.contains("drift") && dom.contains("in sync"));
    assert!(
        dom.contains("1 open rejection<") && dom.contains("1 open drift<"),
        "the counts say they count open ones: {dom}"
    );
    let dom = chromium(&["--dump-dom"], &server.url("/servers/kea-north/dhcp4"));
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("event #3, rejected: rejected #3")
            && dom.contains("version 2 (made by event #2)"),
        "events and versions numbered apart: {dom}"
    );
    let dom = chromium(
        &["--dump-dom"],
        &server.url("/servers/kea-north/dhcp4/diff?from=1&to=2"),
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("3 added, 2 removed, 3 changed"), "{dom}");

    for (name, path) in [
        ("fleet", "/"),
        ("server", "/servers/kea-north/dhcp4"),
        ("diff", "/servers/kea-north/dhcp4/diff?from=1&to=2"),
    ] {
        screenshot(&server, name, path);
    }
    server.stop().await;
}

/// One partner of a hot-standby pair; the standby's config has a reservation inside its pool
/// and a subnet the primary lacks.
fn partner(this: &str) -> serde_json::Value {
    let standby = this == "s2";
    let mut subnets = vec![serde_json::json!({"id": 1, "subnet": "192.0.2.0/24",
        "pools": [{"pool": "192.0.2.100 - 192.0.2.200"}],
        "reservations": [{"hw-address": "aa:bb:cc:dd:ee:01",
                          "ip-address": if standby { "192.0.2.150" } else { "192.0.2.10" }}]})];
    if standby {
        subnets.push(serde_json::json!({"id": 2, "subnet": "10.0.1.0/24"}));
    }
    serde_json::json!({"Dhcp4": {"subnet4": subnets, "hooks-libraries": [
        {"library": "/usr/lib/kea/hooks/libdhcp_lease_cmds.so"},
        {"library": "/usr/lib/kea/hooks/libdhcp_ha.so", "parameters": {"high-availability": [{
            "this-server-name": this, "mode": "hot-standby", "peers": [
                {"name": "s1", "url": "http://10.0.0.1:8000/", "role": "primary"},
                {"name": "s2", "url": "http://10.0.0.2:8000/", "role": "standby"}]}]}}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_and_ha_pages_render_in_headless_chromium() {
    let db = TestDb::new(Backend::Sqlite);
    let central = db.central(None, 64 << 20).await;
    for (n, host, this) in [(1, "kea-a", "s1"), (2, "kea-b", "s2")] {
        let body =
            serde_json::to_vec(&event(n, host, "applied", 1, Some(partner(this)))).expect("json");
        central
            .ingest(&Default::default(), body.into())
            .await
            .expect("ingest");
    }
    let server = TestServer::start(central, None).await;
    let dom = chromium(&["--dump-dom"], &server.url("/ha"));
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("s1 + s2") && dom.contains("differs") && dom.contains("only on kea-b"),
        "{dom}"
    );
    let dom = chromium(&["--dump-dom"], &server.url("/servers/kea-b/dhcp4"));
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("Review of version 1: 1 finding") && dom.contains("reservation_in_pool"),
        "{dom}"
    );
    for (name, path) in [("ha", "/ha"), ("findings", "/servers/kea-b/dhcp4")] {
        screenshot(&server, name, path);
    }
    server.stop().await;
}
