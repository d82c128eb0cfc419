//! Proves the real-Kea harness in tests/common against the installed Kea daemons.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::agent::{Agent, AgentToml, TomlTable};
use common::{
    CtrlAgent, KeaServer, SIGHUP, SIGKILL, backdate, basic_auth_token, large_dhcp4_body,
    send_signal, tail,
};
use kea_sync_agent::kea::Service;
use serde_json::json;

fn assert_version_get(server: &KeaServer) {
    let reply = server.command(r#"{"command":"version-get"}"#);
    assert_eq!(reply["result"], 0, "{reply}");
    let text = reply["text"].as_str().expect("version-get text");
    assert!(
        text.starts_with(common::kea_version()),
        "version-get says {text:?}, kea-dhcp4 -v {:?}",
        common::kea_version()
    );
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn dhcp4_and_dhcp6_answer_version_get() {
    let dhcp4 = KeaServer::start(Service::Dhcp4, json!({}));
    let dhcp6 = KeaServer::start(Service::Dhcp6, json!({}));
    assert_version_get(&dhcp4);
    assert_version_get(&dhcp6);
    assert_ne!(dhcp4.dir, dhcp6.dir, "each server gets its own dir");
    assert!(dhcp4.config_path.ends_with("kea-dhcp4.conf"));
    assert!(dhcp6.config_path.ends_with("kea-dhcp6.conf"));
}

#[test]
fn body_keys_override_defaults() {
    let server = KeaServer::start(
        Service::Dhcp4,
        json!({"Dhcp4": {"valid-lifetime": 1234, "lease-database": {"type": "memfile", "persist": false, "lfc-interval": 0}}}),
    );
    let config = server.command(r#"{"command":"config-get"}"#);
    assert_eq!(config["result"], 0, "{config}");
    let dhcp4 = &config["arguments"]["Dhcp4"];
    assert_eq!(dhcp4["valid-lifetime"], 1234);
    assert_eq!(dhcp4["lease-database"]["lfc-interval"], 0);
    // Kea 3.x lists it under control-sockets, by name alone when in its socket dir.
    let socket = match &dhcp4["control-sockets"] {
        serde_json::Value::Array(sockets) => &sockets[0],
        _ => &dhcp4["control-socket"],
    };
    let name = socket["socket-name"].as_str().unwrap_or_default();
    assert!(
        server.socket_path.to_string_lossy().ends_with(name) && !name.is_empty(),
        "{name:?} for {}",
        server.socket_path.display()
    );
}

#[test]
fn config_reload_increments_reload_count_by_one() {
    for service in Service::ALL {
        let server = KeaServer::start(service, json!({}));
        let before = server.reload_count();
        let reply = server.command(r#"{"command":"config-reload"}"#);
        assert_eq!(reply["result"], 0, "{service:?}: {reply}");
        assert_eq!(
            server.reload_count(),
            before + 1,
            "{service:?}\n{}",
            server.log()
        );
    }
}

#[test]
fn failed_reload_is_not_counted() {
    for service in Service::ALL {
        let server = KeaServer::start(service, json!({}));
        let broken = format!("{{ \"{}\": {{ broken", service.config_key());
        fs::write(&server.config_path, broken).expect("break config");
        let reply = server.command(r#"{"command":"config-reload"}"#);
        assert_eq!(reply["result"], 1, "{service}: {reply}");
        // D2 logs nothing when a config-reload fails: the next command shows it.
        assert_version_get(&server);
        assert_eq!(server.reload_count(), 0, "{service}\n{}", server.log());
        assert!(
            !server.failed_reloads().is_empty(),
            "{service}: the failure is seen\n{}",
            server.log()
        );
    }
}

#[test]
fn start_with_file_accepts_comments_and_placeholders() {
    let text = r#"
        # hash comment
        {
          "Dhcp4": {
            // slash comment
            "interfaces-config": { "interfaces": [] },
            "control-socket": { "socket-type": "unix", "socket-name": "@SOCKET@" },
            /* block
               comment */
            "lease-database": { "type": "memfile", "persist": false },
            "subnet4": [ { "id": 7, "subnet": "192.0.2.0/24" } ],
            "loggers": [ { "name": "kea-dhcp4",
                           "output_options": [ { "output": "@LOG@" } ],
                           "severity": "INFO" } ]
          }
        }
    "#;
    let server = KeaServer::start_with_file(Service::Dhcp4, text);
    assert_version_get(&server);
    let config = server.command(r#"{"command":"config-get"}"#);
    assert_eq!(config["arguments"]["Dhcp4"]["subnet4"][0]["id"], 7);
    assert!(server.log().contains("DHCP4_STARTED"), "{}", server.log());
}

#[test]
fn dropped_server_leaves_no_process() {
    let server = KeaServer::start(Service::Dhcp4, json!({}));
    let pid = server.pid();
    assert!(process_alive(pid));
    drop(server);
    assert!(!process_alive(pid), "kea-dhcp4 pid {pid} survived drop");
}

#[test]
fn server_is_killed_when_the_test_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::panic::catch_unwind(move || {
        let server = KeaServer::start(Service::Dhcp6, json!({}));
        tx.send(server.pid()).expect("send pid");
        panic!("test failure while Kea runs");
    });
    assert!(outcome.is_err());
    let pid = rx.recv().expect("pid from the panicking closure");
    assert!(!process_alive(pid), "kea-dhcp6 pid {pid} survived a panic");
}

#[test]
fn stop_and_restart_keep_dir_and_config() {
    let mut server = KeaServer::start(Service::Dhcp4, json!({"valid-lifetime": 777}));
    let first = server.pid();
    server.stop();
    assert!(!process_alive(first));
    server.restart();
    assert_ne!(server.pid(), first);
    assert!(server.dir.exists());
    let config = server.command(r#"{"command":"config-get"}"#);
    assert_eq!(config["arguments"]["Dhcp4"]["valid-lifetime"], 777);
    // A restart is a fresh start, not a reconfiguration.
    assert_eq!(server.reload_count(), 0);
}

#[test]
fn ctrl_agent_requires_basic_auth() {
    let dhcp4 = KeaServer::start(Service::Dhcp4, json!({}));
    let dhcp6 = KeaServer::start(Service::Dhcp6, json!({}));
    let agent = CtrlAgent::start(&dhcp4, Some(&dhcp6), Some(("admin", "s3cret:pass")));
    assert_eq!(agent.user, "admin");
    assert!(agent.url.starts_with("http://127.0.0.1:"));
    let mode = fs::metadata(&agent.password_file)
        .expect("password file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let password = fs::read_to_string(&agent.password_file).expect("read password");
    assert_eq!(password, "s3cret:pass");

    let command = r#"{"command":"version-get","service":["dhcp4","dhcp6"]}"#;
    let (status, reply) = agent.post(command, None);
    assert_eq!(status, 401);
    assert_eq!(reply["result"], 401, "{reply}");
    let (status, _) = agent.post(command, Some(("admin", "wrong")));
    assert_eq!(status, 401);

    let (status, reply) = agent.post(command, Some(("admin", &password)));
    assert_eq!(status, 200);
    let replies = reply.as_array().expect("one reply per service");
    assert_eq!(replies.len(), 2, "{reply}");
    for one in replies {
        assert_eq!(one["result"], 0, "{reply}");
    }
    assert_eq!(agent.command(command)[1]["result"], 0);
}

#[test]
fn ctrl_agent_without_auth_forwards_to_dhcp4() {
    let dhcp4 = KeaServer::start(Service::Dhcp4, json!({}));
    let agent = CtrlAgent::start(&dhcp4, None, None);
    let reply = agent.command(r#"{"command":"config-get","service":["dhcp4"]}"#);
    assert_eq!(reply[0]["result"], 0, "{reply}");
    assert!(reply[0]["arguments"]["Dhcp4"].is_object());
    let pid = agent.pid();
    drop(agent);
    assert!(
        !process_alive(pid),
        "kea-ctrl-agent pid {pid} survived drop"
    );
}

#[test]
fn large_body_loads() {
    let server = KeaServer::start(Service::Dhcp4, large_dhcp4_body(20, 10));
    let config = server.command(r#"{"command":"config-get"}"#);
    assert_eq!(config["result"], 0, "{config}");
    let subnets = config["arguments"]["Dhcp4"]["subnet4"]
        .as_array()
        .expect("subnet4 list");
    assert_eq!(subnets.len(), 20);
    let reservations: usize = subnets
        .iter()
        .map(|s| s["reservations"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(reservations, 200);
}

#[test]
fn large_body_gives_a_config_get_over_10_mb() {
    let server = KeaServer::start(Service::Dhcp4, large_dhcp4_body(4000, 10));
    let reply = server.command_bytes(r#"{"command":"config-get"}"#);
    assert!(
        reply.len() >= 10_000_000,
        "config-get gave {} bytes",
        reply.len()
    );
    let config: serde_json::Value = serde_json::from_slice(&reply).expect("config-get JSON");
    assert_eq!(config["arguments"]["Dhcp4"]["subnet4"][3999]["id"], 4000);
}

#[test]
fn basic_auth_token_matches_rfc4648_vectors() {
    assert_eq!(basic_auth_token("", ""), "Og==");
    assert_eq!(basic_auth_token("f", "o"), "Zjpv");
    assert_eq!(basic_auth_token("fo", "o"), "Zm86bw==");
    assert_eq!(basic_auth_token("admin", "1234"), "YWRtaW46MTIzNA==");
    assert_eq!(
        basic_auth_token("Aladdin", "open sesame"),
        "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    );
}

/// D2 logs DCTL_CONFIG_COMPLETE for start-up, config-set and reloads alike.
#[test]
fn d2_counts_reloads_and_sighup_but_not_start_up_or_config_set() {
    let mut server = KeaServer::start(Service::D2, json!({"dns-server-timeout": 250}));
    assert_version_get(&server);
    assert!(server.config_path.ends_with("kea-dhcp-ddns.conf"));
    let config = server.command(r#"{"command":"config-get"}"#);
    let d2 = &config["arguments"]["DhcpDdns"];
    assert_eq!(d2["dns-server-timeout"], 250, "{config}");
    assert_ne!(d2["port"], 53001, "D2 gets a port of its own: {config}");
    assert_eq!(server.reload_count(), 0, "{}", server.log());

    let mut arguments = config["arguments"].clone();
    arguments["DhcpDdns"]["dns-server-timeout"] = json!(300);
    let set = server.command(&json!({"command": "config-set", "arguments": arguments}).to_string());
    assert_eq!(set["result"], 0, "{set}");
    let reply = server.command(r#"{"command":"config-reload"}"#);
    assert_eq!(reply["result"], 0, "{reply}");
    assert_eq!(server.reload_count(), 1, "{}", server.log());

    assert!(send_signal(server.pid(), SIGHUP));
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.reload_count() < 2 {
        assert!(
            Instant::now() < deadline,
            "no SIGHUP reload\n{}",
            server.log()
        );
        sleep(Duration::from_millis(20));
    }
    server.restart();
    assert_eq!(server.reload_count(), 2, "{}", server.log());
    assert!(server.failed_reloads().is_empty(), "{}", server.log());
}

/// Polls until `done` holds for the agent's log (all its runs).
fn wait_for_log(agent: &Agent, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(&agent.log()) {
        assert!(
            Instant::now() < deadline && agent.exited().is_none(),
            "no {what} from the agent\n{}",
            tail(&agent.log(), 40)
        );
        sleep(Duration::from_millis(50));
    }
}

fn starts(log: &str) -> usize {
    log.matches("kea-sync-agent started").count()
}

#[test]
fn agent_runs_again_on_its_state_and_leaves_no_process() {
    let kea = KeaServer::start(Service::Dhcp4, json!({}));
    backdate(&kea.config_path);
    let toml = AgentToml::new().service(TomlTable::service(Service::Dhcp4, &kea.config_path));
    let agent = Agent::new().start(&toml);
    let state_dir = agent.dir().join("state");
    assert_eq!(agent.state_dir(), state_dir);
    let text = fs::read_to_string(agent.toml()).expect("read agent.toml");
    let line = format!("state_dir = \"{}\"", state_dir.display());
    assert_eq!(text.lines().nth(1), Some(line.as_str()), "{text}");
    wait_for_log(&agent, "first event", |_| agent.event_count() >= 1);

    let status = agent.stop();
    assert!(status.success(), "SIGTERM: {status}");
    assert!(!agent.running());
    agent.spawn();
    wait_for_log(&agent, "second start", |log| starts(log) == 2);
    agent.kill();
    let status = agent.exited().expect("killed");
    assert_eq!(status.signal(), Some(SIGKILL), "{status}");
    agent.spawn();
    wait_for_log(&agent, "third start", |log| starts(log) == 3);
    assert!(
        state_dir.is_dir(),
        "the agent keeps its state in {state_dir:?}"
    );

    let pid = agent.pid();
    drop(agent);
    assert!(
        !process_alive(pid),
        "kea-sync-agent pid {pid} survived drop"
    );
}

#[test]
fn kea_log_times_are_read_as_utc() {
    let at = |line: &str| {
        common::log_time(line).map(|t| t.duration_since(std::time::UNIX_EPOCH).expect("after 1970"))
    };
    assert_eq!(
        at("1970-01-01 00:00:00.001 INFO  [kea-dhcp4.dhcp4/1.2] X"),
        Some(Duration::from_millis(1))
    );
    // 2026-12-02 07:00:43.356 UTC (`date -u -d '2026-12-02 07:00:43.356' +%s%3N`).
    assert_eq!(
        at("2026-12-02 07:00:43.356 ERROR [kea-dhcp4.dhcp4/18602.1] DHCP4_CONFIG_LOAD_FAIL"),
        Some(Duration::from_millis(1_796_194_843_356))
    );
    assert_eq!(
        at("2000-02-29 12:00:00.000 x"),
        Some(Duration::from_millis(951_825_600_000))
    );
    assert_eq!(at("not a Kea log line"), None);
    // A real Kea, started by the harness, logs in UTC.
    let kea = KeaServer::start(Service::Dhcp4, json!({}));
    let logged = kea.log();
    let first = logged
        .lines()
        .find_map(common::log_time)
        .expect("a timed line");
    let age = std::time::SystemTime::now()
        .duration_since(first)
        .expect("in the past");
    assert!(
        age < Duration::from_secs(120),
        "Kea's log time is {age:?} old: not UTC?"
    );
}
