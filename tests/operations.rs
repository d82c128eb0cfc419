//! The operations surface against a running agent with a real kea-dhcp4 (2.2) and a real
//! HTTPS receiver: the admin socket (`status`, `/v1/events`, `/metrics`), `outbox` and
//! `outbox retry`, and auth failures that wait in the outbox instead of dying.

mod common;
#[path = "common/receiver.rs"]
mod receiver;

use common::agent::{Agent, AgentToml, TomlTable, run_agent};
use common::{KeaServer, backdate, tail, write_private};
use kea_sync_agent::kea::Service;
use receiver::{Answer, Receiver};
use serde_json::{Value, json};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
/// Delivery after a refusal waits out the agent's backoff (up to 60 s).
const DELIVERY_WAIT: Duration = Duration::from_secs(150);

/// A Kea, a receiver and an agent with its admin socket in its own dir. Fields drop in
/// order: the agent stops first.
struct Setup {
    agent: Agent,
    kea: KeaServer,
    receiver: Receiver,
}

impl Setup {
    fn start(agent_lines: &str) -> Setup {
        let kea = KeaServer::start(
            Service::Dhcp4,
            json!({
                "subnet4": [{"id": 1, "subnet": "192.0.2.0/24",
                             "pools": [{"pool": "192.0.2.10 - 192.0.2.20"}]}],
                "valid-lifetime": 4000,
            }),
        );
        backdate(&kea.config_path);
        let receiver = Receiver::start(&format!("kst-ops-{}", ulid::Ulid::new()));
        let agent = Agent::new();
        let token = agent.dir().join("token");
        write_private(&token, &receiver.token);
        let toml = AgentToml::new()
            .service(TomlTable::service(Service::Dhcp4, &kea.config_path))
            .upstream(
                TomlTable::upstream(&receiver.url)
                    .token_file(&token)
                    .ca_file(&receiver.ca_file),
            );
        let mut agent = agent;
        agent.write_toml(&toml);
        // More [agent] keys go into the harness's [agent] table (a second one is not TOML).
        if !agent_lines.is_empty() {
            let text = fs::read_to_string(agent.toml()).expect("agent.toml");
            let text = text.replacen("[agent]\n", &format!("[agent]\n{agent_lines}\n"), 1);
            fs::write(agent.toml(), text).expect("agent.toml");
        }
        agent.spawn();
        let setup = Setup {
            agent,
            kea,
            receiver,
        };
        setup.wait("the start-up snapshot", WAIT, |s| {
            s.receiver.events().iter().any(|e| e["kind"] == "snapshot")
        });
        setup
    }

    fn wait(&self, what: &str, within: Duration, mut done: impl FnMut(&Setup) -> bool) {
        self.agent
            .wait_while_running(what, within, || done(self), || self.context());
    }

    fn context(&self) -> String {
        format!(
            "--- agent log (tail) ---\n{}\n--- receiver ---\n{}",
            tail(&self.agent.log(), 30),
            self.receiver.summary()
        )
    }

    /// Rewrites Kea's file with another valid-lifetime, by rename.
    fn edit(&self, lifetime: u64) {
        let text = fs::read_to_string(&self.kea.config_path).expect("read");
        let start = text.find("\"valid-lifetime\": ").expect("lifetime") + 18;
        let end = start
            + text[start..]
                .find(|c: char| !c.is_ascii_digit())
                .expect("digits");
        let edited = format!("{}{lifetime}{}", &text[..start], &text[end..]);
        let temp = self.kea.config_path.with_extension("conf.ops");
        fs::write(&temp, edited).expect("write");
        fs::rename(&temp, &self.kea.config_path).expect("rename");
    }

    /// The receiver's applied event with `lifetime`, once there.
    fn applied(&self, lifetime: u64, within: Duration) -> Value {
        let find = |s: &Setup| {
            s.receiver.events().into_iter().find(|e| {
                e["kind"] == "applied" && e["config"]["Dhcp4"]["valid-lifetime"] == lifetime
            })
        };
        self.wait(&format!("the applied event of {lifetime}"), within, |s| {
            find(s).is_some()
        });
        find(self).expect("found")
    }

    /// `kea-sync-agent ARGS --config agent.toml`: exit code and stdout.
    fn cli(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let toml = self.agent.toml().to_string_lossy().into_owned();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--config", &toml]);
        let output = run_agent(&all);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `outbox --json`'s events.
    fn outbox(&self) -> Vec<Value> {
        let (code, out, err) = self.cli(&["outbox", "--json"]);
        assert_eq!(code, Some(0), "outbox: {err}");
        let listed: Value = serde_json::from_str(&out).expect("outbox JSON");
        listed["events"].as_array().cloned().unwrap_or_default()
    }
}

/// One HTTP/1.1 GET over the unix socket, by hand: status and body.
fn get(socket: &Path, path: &str) -> (u16, String) {
    let mut stream = UnixStream::connect(socket).expect("connect to the admin socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read the reply");
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of metric line `name{labels}` in a scrape.
fn metric(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn status_events_and_metrics_show_an_edit() {
    let s = Setup::start("admin_group = \"daemon\"");
    let socket = s.agent.admin_socket();
    let before = get(&socket, "/metrics").1;
    s.edit(4100);
    let applied = s.applied(4100, WAIT);

    // status --json: the hashes of the edit, as the receiver got them.
    let (code, out, err) = s.cli(&["status", "--json"]);
    assert_eq!(code, Some(0), "status: {err}");
    let status: Value = serde_json::from_str(&out).expect("status JSON");
    let dhcp4 = &status["services"][0];
    assert_eq!(dhcp4["service"], "dhcp4");
    assert_eq!(dhcp4["file_sha256"], applied["file"]["sha256"], "{status}");
    assert_eq!(
        dhcp4["applied_sha256"], applied["file"]["sha256"],
        "{status}"
    );
    assert_eq!(dhcp4["config_hash"], applied["config_hash"], "{status}");
    assert_eq!(dhcp4["kea_reachable"], true);
    assert_eq!(dhcp4["kea_version"], common::kea_version());
    assert_eq!(dhcp4["last_event"]["outcome"], "applied", "{status}");
    assert_eq!(dhcp4["last_event"]["id"], applied["id"], "{status}");
    assert_eq!(
        dhcp4["files"][0],
        s.kea.config_path.to_string_lossy().as_ref()
    );
    assert_eq!(status["agent"]["pid"], s.agent.pid());
    // The table for people.
    let (code, table, _) = s.cli(&["status"]);
    assert_eq!(code, Some(0));
    assert!(
        table.contains("SERVICE")
            && table.contains("dhcp4")
            && table.contains(&format!("{} up", common::kea_version())),
        "{table}"
    );
    assert!(table.contains("applied"), "{table}");

    // The recent events name the edit.
    let (code, body) = get(&socket, "/v1/events?limit=5");
    assert_eq!(code, 200, "{body}");
    let events: Value = serde_json::from_str(&body).expect("events JSON");
    let last = events["events"]
        .as_array()
        .and_then(|e| e.last())
        .expect("an event");
    assert_eq!(last["outcome"], "applied");
    assert_eq!(last["id"], applied["id"]);

    // The counters moved.
    let after = get(&socket, "/metrics").1;
    let applied_series = "kea_sync_agent_reloads_total{service=\"dhcp4\",outcome=\"applied\"}";
    assert_eq!(metric(&before, applied_series), Some(0.0), "{before}");
    assert_eq!(metric(&after, applied_series), Some(1.0), "{after}");
    assert!(
        metric(
            &after,
            "kea_sync_agent_changes_seen_total{service=\"dhcp4\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{after}"
    );
    assert_eq!(
        metric(
            &after,
            "kea_sync_agent_edit_to_live_seconds_count{service=\"dhcp4\"}"
        ),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        metric(&after, "kea_sync_agent_kea_reachable{service=\"dhcp4\"}"),
        Some(1.0)
    );
    s.wait("the applied event delivered", WAIT, |s| {
        metric(
            &get(&s.agent.admin_socket(), "/metrics").1,
            "kea_sync_agent_deliveries_total",
        )
        .unwrap_or(0.0)
            >= 2.0
    });

    // The socket: mode 0660, group as configured.
    let meta = fs::metadata(&socket).expect("the admin socket");
    assert_eq!(meta.mode() & 0o777, 0o660, "mode {:o}", meta.mode());
    let daemon_gid = fs::read_to_string("/etc/group")
        .expect("/etc/group")
        .lines()
        .find_map(|l| {
            l.strip_prefix("daemon:x:")?
                .split(':')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .expect("a daemon group");
    assert_eq!(meta.gid(), daemon_gid);
}

#[test]
fn a_client_that_sends_nothing_blocks_no_one() {
    let s = Setup::start("");
    let socket = s.agent.admin_socket();
    let _silent = UnixStream::connect(&socket).expect("a silent client");
    let mut half = UnixStream::connect(&socket).expect("a slow client");
    half.write_all(b"GET /v1/sta").expect("half a request");
    let started = Instant::now();
    let (code, out, err) = s.cli(&["status", "--json"]);
    assert_eq!(code, Some(0), "status beside two stuck clients: {err}");
    assert!(out.contains("\"dhcp4\""), "{out}");
    // Not a timing target: the CLI's own timeout (10 s) would have ended it otherwise.
    assert!(started.elapsed() < Duration::from_secs(10));
    let (code, _) = get(&socket, "/v1/status");
    assert_eq!(code, 200);
    let (code, body) = get(&socket, "/v1/nothing");
    assert_eq!(code, 404, "{body}");
}

#[test]
fn status_without_a_daemon_exits_2_naming_the_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("admin.sock");
    let output = run_agent(&["status", "--admin-socket", &socket.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&socket.to_string_lossy().into_owned()) && stderr.contains("is it running"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_receiver_answering_401_keeps_the_event_queued_until_it_accepts() {
    let s = Setup::start("");
    s.receiver
        .set_answer(Answer::Refuse(401, "token rotated".into()));
    s.edit(4200);
    s.wait("the 401 seen by the outbox", WAIT, |s| {
        s.outbox().iter().any(|e| {
            e["state"] == "queued"
                && e["kind"] == "applied"
                && e["last_error"].as_str().is_some_and(|t| t.contains("401"))
        })
    });
    assert!(
        s.agent.dead().is_empty(),
        "nothing dead: {:?}",
        s.agent.dead()
    );
    let (code, table, _) = s.cli(&["outbox"]);
    assert_eq!(code, Some(0));
    assert!(
        table.contains("queued") && table.contains("HTTP 401"),
        "{table}"
    );
    let log = s.agent.log();
    assert_eq!(
        log.matches("upstream refuses the agent's credentials")
            .count(),
        1,
        "said once per streak\n{}",
        tail(&log, 20)
    );
    s.receiver.set_answer(Answer::Accept);
    s.applied(4200, DELIVERY_WAIT);
    s.wait("the outbox empty", WAIT, |s| s.outbox().is_empty());
}

#[test]
fn outbox_retry_brings_a_dead_event_back_and_it_is_delivered() {
    let s = Setup::start("");
    s.receiver
        .set_answer(Answer::Refuse(400, "not today".into()));
    s.edit(4300);
    s.wait("the refused event in dead/", WAIT, |s| {
        !s.agent.dead().is_empty()
    });
    let dead: Vec<Value> = s
        .outbox()
        .into_iter()
        .filter(|e| e["state"] == "dead")
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("HTTP 400"),
        "{dead:?}"
    );
    let id = dead[0]["id"].as_str().expect("an id").to_string();
    let (code, _, err) = s.cli(&["outbox", "retry", "01NOSUCHEVENT0000000000000"]);
    assert_eq!(code, Some(3), "an unknown id: {err}");
    assert!(err.contains("01NOSUCHEVENT0000000000000"), "{err}");
    s.receiver.set_answer(Answer::Accept);
    let (code, out, err) = s.cli(&["outbox", "retry", &id]);
    assert_eq!(code, Some(0), "retry: {err}");
    assert!(out.contains("queued 1"), "{out}");
    let applied = s.applied(4300, DELIVERY_WAIT);
    assert_eq!(applied["id"], id, "delivered under its own id");
    assert!(s.agent.dead().is_empty());
}

#[test]
fn outbox_retry_without_a_daemon_moves_the_files_for_the_next_run() {
    let s = Setup::start("");
    s.receiver
        .set_answer(Answer::Refuse(400, "not today".into()));
    s.edit(4400);
    s.wait("the refused event in dead/", WAIT, |s| {
        !s.agent.dead().is_empty()
    });
    let status = s.agent.stop();
    assert!(status.success(), "{status}");
    let dead = s.outbox();
    assert_eq!(dead.len(), 1, "read from the state dir: {dead:?}");
    assert_eq!(dead[0]["state"], "dead");
    let (code, out, err) = s.cli(&["outbox", "retry", "--all"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("queued 1"), "{out}");
    assert!(s.agent.dead().is_empty());
    assert_eq!(s.agent.outbox().len(), 1);
    s.receiver.set_answer(Answer::Accept);
    s.agent.spawn();
    s.applied(4400, DELIVERY_WAIT);
}

#[test]
fn json_logs_carry_the_service_and_event_id() {
    let s = Setup::start("log_format = \"json\"");
    s.edit(4500);
    let applied = s.applied(4500, WAIT);
    let id = applied["id"].as_str().expect("id");
    let line = s
        .agent
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["event"] == id)
        .unwrap_or_else(|| panic!("a JSON line naming event {id}\n{}", s.context()));
    assert_eq!(line["fields"]["service"], "dhcp4", "{line}");
    assert_eq!(line["fields"]["outcome"], "Applied", "{line}");
    assert_eq!(line["level"], "INFO");
    sleep(Duration::from_millis(10));
}

#[test]
fn metrics_listen_serves_the_read_only_api_on_tcp() {
    let port = common::free_port();
    let s = Setup::start(&format!("metrics_listen = \"127.0.0.1:{port}\""));
    let ask = |request: &str| {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream.write_all(request.as_bytes()).expect("send");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("read");
        reply
    };
    let scrape = ask("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
    assert!(
        scrape.contains("kea_sync_agent_reloads_total{service=\"dhcp4\",outcome=\"applied\"} 0"),
        "counters exist before the first change: {scrape}"
    );
    let status = ask("GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(
        status.starts_with("HTTP/1.1 200") && status.contains("\"dhcp4\""),
        "{status}"
    );
    let apply = ask(
        "POST /v1/apply?service=dhcp4 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(apply.starts_with("HTTP/1.1 403"), "{apply}");
    assert!(!s.agent.log().contains("apply asked through the admin API"));
}
