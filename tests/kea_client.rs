//! The Kea control client against real Kea: every typed command over the unix
//! socket and through kea-ctrl-agent with basic auth, a >10 MB config-get,
//! and each transport failure giving one clear error.

mod common;

use common::agent::AGENT_BIN;
use common::{CtrlAgent, KeaServer, free_port, large_dhcp4_body, runtime};
use kea_sync_agent::kea::{
    Command, ConfigHash, ControlChannel, HttpControl, HttpOptions, KeaError, Outcome, Service,
    UnixControl,
};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

fn unix(server: &KeaServer) -> ControlChannel {
    ControlChannel::Unix(UnixControl::new(&server.socket_path, TIMEOUT))
}

fn through_agent(
    agent: &CtrlAgent,
    service: Service,
    password_file: Option<&Path>,
) -> ControlChannel {
    let options = HttpOptions {
        service: Some(service),
        user: password_file.map(|_| agent.user.clone()),
        password_file: password_file.map(Path::to_path_buf),
        timeout: TIMEOUT,
        ..HttpOptions::default()
    };
    ControlChannel::Http(HttpControl::new(&agent.url, &options).expect("http control"))
}

fn small_body() -> Value {
    json!({"subnet4": [{"id": 1, "subnet": "192.0.2.0/24", "pools": [{"pool": "192.0.2.10-192.0.2.20"}]}]})
}

fn document(value: Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(&value).expect("raw")
}

/// Runs every typed command over `channel` against `server` and checks the
/// effect on Kea itself, not just the reply.
async fn exercise_every_command(channel: &ControlChannel, server: &KeaServer) {
    let version = channel.version_get().await.expect("version-get");
    assert!(
        version.starts_with("2.") || version.starts_with("3."),
        "version {version}"
    );

    let status = channel.status_get().await.expect("status-get");
    assert_eq!(status.pid, Some(server.pid()), "status-get pid is Kea's");

    let commands = channel.list_commands().await.expect("list-commands");
    for needed in ["config-get", "config-reload", "config-test", "config-write"] {
        assert!(
            commands.iter().any(|c| c == needed),
            "{needed} in {commands:?}"
        );
    }

    let in_memory = channel.config_get().await.expect("config-get");
    let config: Value = serde_json::from_str(in_memory.config.get()).expect("config json");
    assert_eq!(config["Dhcp4"]["subnet4"][0]["subnet"], "192.0.2.0/24");
    assert!(
        config.get("hash").is_none(),
        "hash stripped from config-get arguments"
    );

    match channel.config_hash_get().await.expect("config-hash-get") {
        ConfigHash::Unsupported => {
            assert!(version.starts_with("2.2"), "only 2.2 lacks config-hash-get")
        }
        ConfigHash::Hash(hash) => {
            assert_eq!(Some(hash), in_memory.hash, "hash matches config-get's")
        }
    }

    // config-get output fed back to config-test is accepted (hash stripped).
    let verdict = channel
        .config_test(in_memory.config)
        .await
        .expect("config-test");
    assert_eq!(verdict.outcome, Outcome::Success, "{}", verdict.text);

    let bad = document(
        json!({"Dhcp4": {"subnet4": [{"id": 1, "subnet": "192.0.2.0/24",
        "pools": [{"pool": "198.51.100.1-198.51.100.5"}]}]}}),
    );
    let verdict = channel
        .config_test(bad)
        .await
        .expect("config-test of a bad config");
    assert_eq!(verdict.outcome, Outcome::Error);
    assert!(
        verdict.text.contains("198.51.100.1"),
        "Kea's text: {}",
        verdict.text
    );

    let before = server.reload_count();
    let reply = channel.config_reload().await.expect("config-reload");
    assert_eq!(reply.outcome, Outcome::Success);
    assert_eq!(
        server.reload_count(),
        before + 1,
        "Kea logged exactly one more reload"
    );

    let written = server.dir.join("written.json");
    channel
        .config_write(Some(written.display().to_string()))
        .await
        .expect("config-write");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&written).expect("written file"))
            .expect("json");
    assert_eq!(written["Dhcp4"]["subnet4"][0]["subnet"], "192.0.2.0/24");

    let unknown = channel
        .send(&Command::from_name("no-such-command", None))
        .await
        .expect("raw command");
    assert_eq!(unknown.outcome, Outcome::Unsupported);
    assert!(!unknown.text.is_empty());
}

#[test]
fn every_command_over_the_unix_socket() {
    let server = KeaServer::start(Service::Dhcp4, small_body());
    runtime().block_on(exercise_every_command(&unix(&server), &server));
}

#[test]
fn every_command_through_ctrl_agent_with_basic_auth() {
    let dhcp4 = KeaServer::start(Service::Dhcp4, small_body());
    let dhcp6 = KeaServer::start(Service::Dhcp6, json!({}));
    let agent = CtrlAgent::start(&dhcp4, Some(&dhcp6), Some(("kea-admin", "s3cret-Pa55")));
    let rt = runtime();
    let channel = through_agent(&agent, Service::Dhcp4, Some(&agent.password_file));
    rt.block_on(exercise_every_command(&channel, &dhcp4));

    // The service list routes to dhcp6.
    let to_dhcp6 = through_agent(&agent, Service::Dhcp6, Some(&agent.password_file));
    let status = rt
        .block_on(to_dhcp6.status_get())
        .expect("dhcp6 status-get");
    assert_eq!(status.pid, Some(dhcp6.pid()));

    // No credentials, wrong password: a clear 401 naming the URL.
    let anonymous = through_agent(&agent, Service::Dhcp4, None);
    let error = rt
        .block_on(anonymous.version_get())
        .expect_err("no credentials");
    assert!(
        matches!(error, KeaError::Unauthorized { status: 401, .. }),
        "{error}"
    );
    assert!(error.to_string().contains(&agent.url));
    let wrong = agent.dir.join("wrong-password");
    std::fs::write(&wrong, "not-it\n").expect("write");
    let error = rt
        .block_on(through_agent(&agent, Service::Dhcp4, Some(&wrong)).version_get())
        .expect_err("wrong password");
    assert!(matches!(error, KeaError::Unauthorized { .. }), "{error}");
    assert!(
        !error.to_string().contains("not-it"),
        "password never in errors"
    );
}

#[test]
fn config_get_of_more_than_10_mb_arrives_intact() {
    let server = KeaServer::start(Service::Dhcp4, large_dhcp4_body(500, 160));
    let agent = CtrlAgent::start(&server, None, None);
    let rt = runtime();
    let expected = server.command(r#"{"command": "config-get"}"#);
    let expected_config = &expected["arguments"]["Dhcp4"];
    for channel in [unix(&server), through_agent(&agent, Service::Dhcp4, None)] {
        let reply = rt
            .block_on(channel.send(&Command::ConfigGet))
            .expect("config-get");
        let raw = reply.arguments.expect("arguments");
        assert!(
            raw.get().len() > 10_000_000,
            "{} bytes from {}",
            raw.get().len(),
            channel.endpoint()
        );
        let value: Value = serde_json::from_str(raw.get()).expect("intact JSON");
        assert_eq!(
            &value["Dhcp4"], expected_config,
            "same config as a plain socket read"
        );
        assert_eq!(
            value["Dhcp4"]["subnet4"].as_array().map(Vec::len),
            Some(500)
        );
    }
}

#[test]
fn missing_socket_is_named_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kea4-ctrl-socket");
    let error = runtime()
        .block_on(ControlChannel::Unix(UnixControl::new(&path, TIMEOUT)).version_get())
        .expect_err("no socket");
    assert!(matches!(error, KeaError::SocketMissing { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("is Kea running"),
        "{text}"
    );
}

/// No Kea older than 2.2 installs here (Debian 11's 1.8 is gone): a socket that answers
/// version-get the way Kea 1.8 did stands in for one.
#[test]
fn a_kea_older_than_2_2_is_refused_by_name() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kea-1.8.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buf = [0u8; 512];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(br#"{ "result": 0, "text": "1.8.2" }"#);
        }
    });
    let error = runtime()
        .block_on(ControlChannel::Unix(UnixControl::new(&path, TIMEOUT)).version_get())
        .expect_err("Kea 1.8 is refused");
    assert!(matches!(error, KeaError::TooOld { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("1.8.2") && text.contains("2.2.0") && text.contains("upgrade Kea"),
        "{text}"
    );
}

#[test]
fn socket_nobody_listens_on_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    let error = runtime()
        .block_on(ControlChannel::Unix(UnixControl::new(&path, TIMEOUT)).version_get())
        .expect_err("stale socket");
    assert!(matches!(error, KeaError::SocketRefused { .. }), "{error}");
}

#[test]
fn url_that_refuses_is_named() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let channel = ControlChannel::Http(
        HttpControl::new(
            &url,
            &HttpOptions {
                timeout: TIMEOUT,
                ..HttpOptions::default()
            },
        )
        .expect("client"),
    );
    let error = runtime()
        .block_on(channel.version_get())
        .expect_err("refused");
    assert!(matches!(error, KeaError::HttpUnreachable { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains(&url) && text.to_lowercase().contains("refused"),
        "{text}"
    );
}

/// A fake "Kea" on a unix socket that answers every connection with `body`.
fn fake_kea(body: &'static [u8], stall: bool) -> (tempfile::TempDir, std::path::PathBuf) {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fake.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            if stall {
                std::thread::sleep(Duration::from_secs(30));
            }
            let _ = stream.write_all(body);
        }
    });
    (dir, path)
}

#[test]
fn truncated_or_non_json_replies_are_transport_errors() {
    let rt = runtime();
    for body in [
        &br#"{ "arguments": { "Dhcp4": { "subnet4": [ {"id": 1"#[..],
        b"HTTP/1.1 200 OK\r\n\r\nhello",
    ] {
        let (_dir, path) = fake_kea(body, false);
        let channel = ControlChannel::Unix(UnixControl::new(&path, TIMEOUT));
        let error = rt
            .block_on(channel.send(&Command::ConfigGet))
            .expect_err("garbled reply");
        assert!(matches!(error, KeaError::BadReply { .. }), "{error}");
        let text = error.to_string();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("config-get"),
            "{text}"
        );
    }
}

#[test]
fn a_silent_kea_times_out_with_the_socket_named() {
    let (_dir, path) = fake_kea(b"{}", true);
    let channel = ControlChannel::Unix(UnixControl::new(&path, Duration::from_millis(300)));
    let error = runtime()
        .block_on(channel.status_get())
        .expect_err("timeout");
    assert!(matches!(error, KeaError::Timeout { .. }), "{error}");
    assert!(error.to_string().contains(&path.display().to_string()));
}

#[test]
fn permission_denied_names_the_owner_to_run_as() {
    let server = KeaServer::start(Service::Dhcp4, small_body());
    // As root nothing is denied: run the CLI as nobody, like a wrongly
    // configured service user would.
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(AGENT_BIN)
        .args(["kea", "version-get", "--socket"])
        .arg(&server.socket_path)
        .output()
        .expect("setpriv (util-linux) runs the CLI as nobody");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(
        stderr.contains("owned by root") && stderr.contains("runs as nobody"),
        "{stderr}"
    );
}

#[test]
fn cli_prints_keas_reply_and_exits_by_result() {
    let server = KeaServer::start(Service::Dhcp4, small_body());
    let cli = |args: &[&str]| {
        std::process::Command::new(AGENT_BIN)
            .arg("kea")
            .args(args)
            .arg("--socket")
            .arg(&server.socket_path)
            .output()
            .expect("run CLI")
    };
    let ok = cli(&["version-get"]);
    assert_eq!(ok.status.code(), Some(0));
    let reply: Value = serde_json::from_slice(&ok.stdout).expect("JSON on stdout");
    assert_eq!(reply["result"], 0);

    let bad = cli(&[
        "config-test",
        "--arguments",
        r#"{"Dhcp4": {"valid-lifetime": "x"}}"#,
    ]);
    assert_eq!(bad.status.code(), Some(1), "Kea result 1 -> exit 1");
    let reply: Value = serde_json::from_slice(&bad.stdout).expect("JSON on stdout");
    assert_eq!(reply["result"], 1);

    let unsupported = cli(&["no-such-command"]);
    assert_eq!(unsupported.status.code(), Some(1));

    let before = server.reload_count();
    assert_eq!(cli(&["config-reload"]).status.code(), Some(0));
    assert_eq!(server.reload_count(), before + 1);

    let missing = std::process::Command::new(AGENT_BIN)
        .args(["kea", "version-get", "--socket", "/nonexistent/kea.sock"])
        .output()
        .expect("run CLI");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/kea.sock"));
}
