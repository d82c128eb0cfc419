//! HA pairs end to end: two real kea-dhcp4 processes on loopback as one HA pair (HA's
//! own multi-threaded listener on 127.0.0.1), one agent each, one HTTPS receiver each.
//! A sampler asks both servers for their HA state every 100 ms: the agents must never
//! have both partners out of their normal state at once, whatever the order and timing
//! of the edits, and every edit must end live on its server with an event saying what
//! HA did. Kea 2.2 (the host's) and Kea 3.0 (the sid root of scripts/kea-roots).

mod common;
#[path = "common/receiver.rs"]
mod receiver;

use common::agent::{Agent, AgentToml, TomlTable};
use common::{KeaServer, backdate, free_port, kea_root, root_validator, tail, write_private};
use kea_sync_agent::kea::Service;
use receiver::Receiver;
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
const HOOKS: &str = "/usr/lib/x86_64-linux-gnu/kea/hooks";
const NORMAL: [&str; 4] = ["hot-standby", "load-balancing", "passive-backup", "backup"];
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const NAMES: [&str; 2] = ["server1", "server2"];

/// One server's config: HA with its own listener, the pair's peers on `ports`.
fn config(mode: &str, this: usize, ports: [u16; 2], lifetime: u64) -> String {
    let second = if mode == "load-balancing" {
        "secondary"
    } else {
        "standby"
    };
    let peer = |i: usize, role: &str| {
        json!({"name": NAMES[i], "url": format!("http://127.0.0.1:{}/", ports[i]),
               "role": role, "auto-failover": true})
    };
    let ha = json!({"high-availability": [{
        "this-server-name": NAMES[this],
        "mode": mode,
        "heartbeat-delay": 1000,
        "max-response-delay": 3000,
        "max-ack-delay": 1000,
        "max-unacked-clients": 0,
        "multi-threading": {"enable-multi-threading": true, "http-dedicated-listener": true,
                            "http-listener-threads": 1, "http-client-threads": 1},
        "peers": [peer(0, "primary"), peer(1, second)],
    }]});
    let body = json!({"Dhcp4": {
        "interfaces-config": {"interfaces": []},
        "control-socket": {"socket-type": "unix", "socket-name": "@SOCKET@"},
        "lease-database": {"type": "memfile", "persist": false},
        // Kea 2.2 serves HA's own listener only with multi-threading (default on in 2.4+).
        "multi-threading": {"enable-multi-threading": true, "thread-pool-size": 2,
                            "packet-queue-size": 16},
        "hooks-libraries": [
            {"library": format!("{HOOKS}/libdhcp_lease_cmds.so")},
            {"library": format!("{HOOKS}/libdhcp_ha.so"), "parameters": ha},
        ],
        "subnet4": [{"id": 1, "subnet": "192.0.2.0/24",
                     "pools": [{"pool": "192.0.2.100 - 192.0.2.200"}]}],
        "valid-lifetime": lifetime,
        "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": "@LOG@"}],
                     "severity": "INFO"}],
    }});
    serde_json::to_string_pretty(&body).expect("config JSON")
}

/// One server of the pair with its agent and receiver. Fields drop in order: the agent
/// stops before Kea.
struct Member {
    agent: Agent,
    kea: KeaServer,
    receiver: Receiver,
}

/// Two servers of one HA relationship, server1 the primary.
struct Pair {
    members: Vec<Member>,
    mode: &'static str,
}

impl Pair {
    /// Starts both Keas (HA back to normal first), then an agent for each with `extra`
    /// lines in `[ha]`.
    fn start(root: Option<&Path>, mode: &'static str, ha_lines: &[&str]) -> Pair {
        let ports = [free_port(), free_port()];
        let keas: Vec<KeaServer> = (0..2)
            .map(|i| {
                let text = config(mode, i, ports, 4000);
                let kea = KeaServer::start_in(root, Service::Dhcp4, &text, &[]);
                backdate(&kea.config_path);
                kea
            })
            .collect();
        wait_normal(&keas.iter().collect::<Vec<_>>(), mode);
        let members = keas
            .into_iter()
            .map(|kea| {
                let receiver = Receiver::start(&format!("kst-ha-{}", ulid::Ulid::new()));
                let agent = Agent::new();
                let token_file = agent.dir().join("token");
                write_private(&token_file, &receiver.token);
                let mut service = TomlTable::service(Service::Dhcp4, &kea.config_path)
                    .control_socket(&kea.socket_path);
                if let Some(root) = root {
                    service = service.path(
                        "validator",
                        &root_validator(root, Service::Dhcp4, agent.dir()),
                    );
                }
                let mut extra = String::from("[ha]\n");
                for line in ha_lines {
                    extra.push_str(line);
                    extra.push('\n');
                }
                let toml = AgentToml::new()
                    .service(service)
                    .upstream(
                        TomlTable::upstream(&receiver.url)
                            .token_file(&token_file)
                            .ca_file(&receiver.ca_file),
                    )
                    .extra(&extra);
                let agent = agent.start(&toml);
                Member {
                    agent,
                    kea,
                    receiver,
                }
            })
            .collect();
        let pair = Pair { members, mode };
        // Each agent met its Kea (a snapshot of what Kea runs) before any edit.
        for member in &pair.members {
            pair.wait("the start-up snapshot", || {
                member
                    .receiver
                    .events()
                    .iter()
                    .any(|e| e["kind"] == "snapshot")
            });
        }
        pair
    }

    /// Rewrites server `i`'s file with `lifetime`, by rename as deployment tools do.
    fn edit(&self, i: usize, lifetime: u64) {
        let member = &self.members[i];
        let text = fs::read_to_string(&member.kea.config_path).expect("read the config");
        let old = format!("\"valid-lifetime\": {}", current_lifetime(&text));
        let edited = text.replace(&old, &format!("\"valid-lifetime\": {lifetime}"));
        assert_ne!(edited, text, "the edit changes the file");
        let temp = member.kea.config_path.with_extension("conf.ha-test");
        fs::write(&temp, edited).expect("write the edit");
        fs::rename(&temp, &member.kea.config_path).expect("rename over Kea's file");
    }

    /// Kea's in-memory valid-lifetime of server `i`.
    fn live_lifetime(&self, i: usize) -> Option<u64> {
        let reply = self.members[i].kea.command(r#"{"command":"config-get"}"#);
        reply["arguments"]["Dhcp4"]["valid-lifetime"].as_u64()
    }

    /// Receiver `i`'s events of `kind`.
    fn events(&self, i: usize, kind: &str) -> Vec<Value> {
        self.members[i]
            .receiver
            .events()
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }

    /// Waits for the applied event of server `i` whose config has `lifetime`.
    fn applied(&self, i: usize, lifetime: u64) -> Value {
        let find = || {
            self.events(i, "applied")
                .into_iter()
                .find(|e| e["config"]["Dhcp4"]["valid-lifetime"] == lifetime)
        };
        self.wait(
            &format!("{}'s applied event of {lifetime}", NAMES[i]),
            || find().is_some(),
        );
        find().expect("found")
    }

    fn wait(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done() {
            for member in &self.members {
                if let Some(status) = member.agent.exited() {
                    panic!(
                        "an agent exited ({status}) waiting for {what}\n{}",
                        self.context()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for {what}\n{}",
                self.context()
            );
            sleep(Duration::from_millis(50));
        }
    }

    fn context(&self) -> String {
        let mut text = String::new();
        for (i, member) in self.members.iter().enumerate() {
            text.push_str(&format!(
                "--- {} agent (tail) ---\n{}\n--- {} receiver ---\n{}--- {} Kea (tail) ---\n{}\n",
                NAMES[i],
                tail(&member.agent.log(), 25),
                NAMES[i],
                member.receiver.summary(),
                NAMES[i],
                tail(&member.kea.log(), 15),
            ));
        }
        text
    }

    /// Samples both servers' HA state every 100 ms until stopped.
    fn sampler(&self) -> Sampler {
        let sockets: Vec<PathBuf> = self
            .members
            .iter()
            .map(|m| m.kea.socket_path.clone())
            .collect();
        Sampler::start(sockets)
    }
}

/// Both servers' HA state over time.
struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<[String; 2]>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(sockets: Vec<PathBuf>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let states = [ha_state(&sockets[0]), ha_state(&sockets[1])];
                    samples.lock().expect("samples").push(states);
                    sleep(SAMPLE_EVERY);
                }
            })
        };
        Sampler {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns the samples.
    fn finish(mut self) -> Vec<[String; 2]> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("sampler thread");
        }
        std::mem::take(&mut *self.samples.lock().expect("samples"))
    }
}

/// A server's own HA state from status-get over its unix socket ("down" when it does
/// not answer).
fn ha_state(socket: &Path) -> String {
    let reply = common::send_unix(socket, r#"{"command":"status-get"}"#)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    match reply {
        Some(reply) => reply["arguments"]["high-availability"][0]["ha-servers"]["local"]["state"]
            .as_str()
            .unwrap_or("none")
            .to_string(),
        None => "down".into(),
    }
}

/// Waits until both servers are in their normal state.
fn wait_normal(keas: &[&KeaServer], mode: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let states: Vec<String> = keas.iter().map(|k| ha_state(&k.socket_path)).collect();
        if states.iter().all(|s| NORMAL.contains(&s.as_str())) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the {mode} pair did not get to its normal state within {WAIT:?}: {states:?}\n{}",
            keas.iter()
                .map(|k| tail(&k.log(), 15))
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        sleep(Duration::from_millis(100));
    }
}

fn current_lifetime(text: &str) -> u64 {
    const KEY: &str = "\"valid-lifetime\": ";
    let start = text.find(KEY).expect("valid-lifetime in the file") + KEY.len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("a number")
}

/// The samples in which both servers were out of their normal state.
fn both_out(samples: &[[String; 2]]) -> Vec<&[String; 2]> {
    samples
        .iter()
        .filter(|s| s.iter().all(|state| !NORMAL.contains(&state.as_str())))
        .collect()
}

/// The event's `ha` says this server's side of the pair, back to normal.
fn assert_ha(event: &Value, this: usize, role: &str, mode: &str) {
    let ha = &event["ha"];
    assert_eq!(ha["this_server"], NAMES[this], "{event}");
    assert_eq!(ha["role"], role, "{event}");
    assert_eq!(ha["mode"], mode, "{event}");
    assert_eq!(ha["partner"], NAMES[1 - this], "{event}");
    for key in ["state_before", "state_after", "partner_state_after"] {
        let state = ha[key].as_str().unwrap_or_default();
        assert!(NORMAL.contains(&state), "{key} is {state}: {event}");
    }
    assert!(ha.get("error").is_none(), "{event}");
}

/// Edits both servers `gap` apart (`first` first) and checks the pair was never out of
/// its normal state on both servers at once, both ending with their edit live.
fn edit_both(pair: &Pair, first: usize, gap: Duration) -> [Value; 2] {
    let sampler = pair.sampler();
    sleep(Duration::from_millis(300));
    pair.edit(first, 5001);
    sleep(gap);
    pair.edit(1 - first, 5001);
    let events = [pair.applied(0, 5001), pair.applied(1, 5001)];
    let keas: Vec<&KeaServer> = pair.members.iter().map(|m| &m.kea).collect();
    wait_normal(&keas, pair.mode);
    sleep(Duration::from_millis(300));
    let samples = sampler.finish();
    let out = both_out(&samples);
    assert!(
        out.is_empty(),
        "both servers were out of their normal state at once in {} of {} samples: {out:?}\nall samples: {samples:?}\n{}",
        out.len(),
        samples.len(),
        pair.context()
    );
    // Each server was out for its own reload, so the sampler saw them take turns.
    for i in 0..2 {
        assert!(
            samples.iter().any(|s| !NORMAL.contains(&s[i].as_str())),
            "the sampler never saw {} restart HA: {samples:?}",
            NAMES[i]
        );
        assert_eq!(
            pair.live_lifetime(i),
            Some(5001),
            "{} runs the edit",
            NAMES[i]
        );
        assert_eq!(
            pair.members[i].kea.reload_count(),
            1,
            "{} reloaded once",
            NAMES[i]
        );
    }
    events
}

#[test]
fn an_edit_of_the_primary_reloads_it_and_the_pair_returns_to_hot_standby() {
    let pair = Pair::start(None, "hot-standby", &[]);
    pair.edit(0, 4100);
    let event = pair.applied(0, 4100);
    assert_ha(&event, 0, "primary", "hot-standby");
    assert!(
        event.get("warnings").is_none(),
        "no warning on the primary: {event}"
    );
    assert_eq!(pair.live_lifetime(0), Some(4100));
    assert_eq!(
        pair.live_lifetime(1),
        Some(4000),
        "the standby is not touched"
    );
    assert_eq!(pair.members[1].kea.reload_count(), 0);
    // `check` asks the partner the way the agent will before every reload.
    let check = pair.members[0].agent.run("check");
    let out = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(
        out.contains("HA: server1 (primary, hot-standby), partner server2")
            && out.contains("answers ha-heartbeat: hot-standby"),
        "{out}"
    );
    // The start-up snapshot told the roles too, before any reload.
    let snapshot = &pair.events(1, "snapshot")[0];
    assert_eq!(snapshot["ha"]["role"], "standby", "{snapshot}");
    assert_eq!(snapshot["ha"]["state_after"], "hot-standby", "{snapshot}");
}

#[test]
fn both_edited_within_100_ms_take_turns_standby_first() {
    let pair = Pair::start(None, "hot-standby", &[]);
    let [primary, standby] = edit_both(&pair, 1, Duration::from_millis(100));
    assert_ha(&primary, 0, "primary", "hot-standby");
    assert_ha(&standby, 1, "standby", "hot-standby");
    // The standby, edited first, was applied after the primary.
    let applied_at = |e: &Value| e["applied_at"].as_str().unwrap_or_default().to_string();
    assert!(
        applied_at(&standby) > applied_at(&primary),
        "standby {} before primary {}",
        applied_at(&standby),
        applied_at(&primary)
    );
    assert!(
        pair.members[1]
            .agent
            .log()
            .contains("HA: holding the reload"),
        "the standby's agent said it held the reload\n{}",
        pair.context()
    );
}

#[test]
fn both_edited_within_100_ms_take_turns_primary_first() {
    let pair = Pair::start(None, "hot-standby", &[]);
    let [primary, standby] = edit_both(&pair, 0, Duration::from_millis(100));
    assert_ha(&primary, 0, "primary", "hot-standby");
    assert_ha(&standby, 1, "standby", "hot-standby");
}

#[test]
fn an_edit_of_the_standby_alone_is_warned_or_refused_as_configured() {
    let mut pair = Pair::start(None, "hot-standby", &["secondary_edits = \"refuse\""]);
    pair.edit(1, 4200);
    pair.wait("the standby's rejection", || {
        !pair.events(1, "rejected").is_empty()
    });
    let rejected = &pair.events(1, "rejected")[0];
    let text = rejected["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("secondary_edits") && text.contains("server1"),
        "{rejected}"
    );
    assert_eq!(rejected["ha"]["role"], "standby", "{rejected}");
    assert_eq!(pair.live_lifetime(1), Some(4000), "refused: not reloaded");
    assert_eq!(pair.members[1].kea.reload_count(), 0);
    // The default, "warn": applied, with the warning on the event.
    let member = &mut pair.members[1];
    let text = fs::read_to_string(member.agent.toml()).expect("agent.toml");
    fs::write(
        member.agent.toml(),
        text.replace("secondary_edits = \"refuse\"\n", ""),
    )
    .expect("rewrite agent.toml");
    member.agent.signal(common::SIGHUP);
    pair.wait("the agent to re-read its config", || {
        pair.members[1]
            .agent
            .log()
            .contains("SIGHUP: agent config re-read")
    });
    pair.edit(1, 4300);
    let applied = pair.applied(1, 4300);
    let warning = applied["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.contains("Micetro") && warning.contains("standby") && warning.contains("server1"),
        "{applied}"
    );
    assert_ha(&applied, 1, "standby", "hot-standby");
    assert_eq!(pair.live_lifetime(1), Some(4300));
}

#[test]
fn a_load_balancing_pair_edited_at_once_takes_turns() {
    let pair = Pair::start(None, "load-balancing", &[]);
    let [primary, secondary] = edit_both(&pair, 0, Duration::ZERO);
    assert_ha(&primary, 0, "primary", "load-balancing");
    assert_ha(&secondary, 1, "secondary", "load-balancing");
    assert!(secondary["warnings"][0].as_str().is_some(), "{secondary}");
}

#[test]
fn a_kea_3_0_pair_edited_at_once_takes_turns() {
    let root = kea_root();
    let pair = Pair::start(Some(&root), "hot-standby", &[]);
    let [primary, standby] = edit_both(&pair, 1, Duration::from_millis(50));
    assert_ha(&primary, 0, "primary", "hot-standby");
    assert_ha(&standby, 1, "standby", "hot-standby");
    assert!(
        primary["kea_version"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.0"),
        "{primary}"
    );
}

#[test]
fn a_reload_that_cuts_the_server_off_its_partner_carries_an_ha_error() {
    let pair = Pair::start(None, "hot-standby", &["follow_timeout_s = 15"]);
    // The standby's file now looks for the primary where nobody listens.
    let member = &pair.members[1];
    let text = fs::read_to_string(&member.kea.config_path).expect("read");
    let primary_port = pair.members[0]
        .kea
        .command(r#"{"command":"config-get"}"#)["arguments"]["Dhcp4"]["hooks-libraries"][1]
        ["parameters"]["high-availability"][0]["peers"][0]["url"]
        .as_str()
        .expect("the primary's url")
        .to_string();
    let nowhere = format!("http://127.0.0.1:{}/", free_port());
    let edited = text
        .replace(&primary_port, &nowhere)
        .replace("\"valid-lifetime\": 4000", "\"valid-lifetime\": 4400");
    assert_ne!(edited, text);
    let temp = member.kea.config_path.with_extension("conf.ha-test");
    fs::write(&temp, edited).expect("write the edit");
    fs::rename(&temp, &member.kea.config_path).expect("rename");
    let applied = pair.applied(1, 4400);
    let error = applied["ha"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("partner-down") || error.contains("after the reload"),
        "the event says what the reload did to HA: {applied}"
    );
    assert_ne!(applied["ha"]["state_after"], "hot-standby", "{applied}");
    assert!(
        pair.members[1].agent.log().contains("HA: "),
        "the agent logged the HA error\n{}",
        pair.context()
    );
}
