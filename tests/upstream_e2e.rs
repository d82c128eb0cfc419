//! The upstream push end to end: a real kea-dhcp4 (2.2), the agent binary, and a real
//! HTTPS receiver (tests/common/receiver.rs) per test. Each edit of Kea's config file must
//! reach the receiver as an event (docs/upstream-api.md) through the agent's durable
//! outbox, whatever the receiver does meanwhile (away, refusing, throttling, failing,
//! stalling, untrusted) and however often the agent is killed.

mod common;
#[path = "common/receiver.rs"]
mod receiver;

use common::agent::{Agent, AgentToml, TomlTable};
use common::disk::SmallDisk;
use common::{KeaServer, SIGHUP, backdate, is_sha256_hex, large_dhcp4_body, tail, write_private};
use kea_sync_agent::kea::Service;
use receiver::{Answer, Receiver, StoredEvent, TestCa};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

/// How long anything expected may take on a slow, shared machine.
const WAIT: Duration = Duration::from_secs(60);
/// Delivery after the receiver comes back waits out the agent's backoff (up to 60 s).
const DELIVERY_WAIT: Duration = Duration::from_secs(150);
/// Time given to the agent to do something it should not, before looking.
const QUIET: Duration = Duration::from_millis(1500);
const FIRST_LIFETIME: u64 = 4000;

// ---------------------------------------------------------------------------------------
// Kea

/// kea-dhcp4 running `body` (plus `valid-lifetime`), its file backdated an hour so the
/// agent sees Kea loaded it itself and does not reload at start.
fn start_kea(mut body: Value) -> KeaServer {
    body["valid-lifetime"] = json!(FIRST_LIFETIME);
    let kea = KeaServer::start(Service::Dhcp4, body);
    backdate(&kea.config_path);
    kea
}

fn small_body() -> Value {
    json!({
        "subnet4": [{"id": 1, "subnet": "192.0.2.0/24", "pools": [{"pool": "192.0.2.10 - 192.0.2.20"}]}],
    })
}

/// Kea's in-memory config: config-get's arguments without `hash`. Kea 2.2 closes a control
/// connection still busy after 10 s (COMMAND_SOCKET_CONNECTION_TIMEOUT), which cuts a 50 MB
/// reply short on a busy machine: such a reply is asked for again.
fn live_config(kea: &KeaServer) -> Value {
    for _ in 0..3 {
        let bytes = kea.command_bytes(r#"{"command":"config-get"}"#);
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(mut reply) => {
                assert_eq!(reply["result"], 0, "config-get failed: {}", reply["text"]);
                let mut arguments = reply["arguments"].take();
                if let Some(map) = arguments.as_object_mut() {
                    map.remove("hash");
                }
                return arguments;
            }
            Err(error) => eprintln!(
                "config-get reply cut short after {} bytes ({error}); asking again",
                bytes.len()
            ),
        }
    }
    panic!(
        "Kea cut config-get short three times\n{}",
        tail(&kea.log(), 10)
    );
}

fn live_lifetime(kea: &KeaServer) -> Option<u64> {
    live_config(kea)["Dhcp4"]["valid-lifetime"].as_u64()
}

/// Rewrites Kea's config file (pretty JSON from the harness) with another
/// `valid-lifetime`, by rename as deployment tools do.
fn edit_lifetime(kea: &KeaServer, lifetime: u64) {
    const KEY: &str = "\"valid-lifetime\": ";
    let text = fs::read_to_string(&kea.config_path).expect("read Kea's config file");
    assert_eq!(
        text.matches(KEY).count(),
        1,
        "one valid-lifetime in the file"
    );
    let start = text.find(KEY).expect("valid-lifetime") + KEY.len();
    let digits = text[start..]
        .find(|c: char| !c.is_ascii_digit())
        .expect("a number");
    let edited = format!("{}{lifetime}{}", &text[..start], &text[start + digits..]);
    let temp = kea.config_path.with_extension("conf.upstream-e2e");
    fs::write(&temp, edited).expect("write the edited config");
    fs::rename(&temp, &kea.config_path).expect("rename over Kea's config file");
}

/// An event's `config.Dhcp4.valid-lifetime`.
fn lifetime_of(event: &Value) -> Option<u64> {
    event["config"]["Dhcp4"]["valid-lifetime"].as_u64()
}

/// SHA-256 and length of `value` serialized with every object's keys sorted.
fn canonical_digest(mut value: Value) -> (String, usize) {
    value.sort_all_objects();
    let mut hasher = HashWriter(Sha256::new(), 0);
    {
        // Streamed into the hash: no second 50 MB buffer.
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, &mut hasher);
        serde_json::to_writer(&mut writer, &value).expect("serialize");
        writer.flush().expect("flush into the hash");
    }
    let HashWriter(digest, len) = hasher;
    let hex = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (hex, len)
}

/// Counts and hashes what is written to it.
struct HashWriter(Sha256, usize);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The agent process

/// How to run the agent.
struct AgentOptions {
    /// KEA_SYNC_AGENT_LOG.
    log_filter: &'static str,
    /// `[upstream] timeout_s`.
    upstream_timeout_s: u64,
    /// `[[service]] timeout_s` (reloads of huge configs take long).
    kea_timeout_s: u64,
    /// `[agent] check_interval_s`, the periodic safety net.
    check_interval_s: u64,
    /// `[upstream] ca_file`; None: the receiver's own CA.
    ca_file: Option<PathBuf>,
    /// `[agent] state_dir`; None: `state` in the agent's dir.
    state_dir: Option<PathBuf>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            log_filter: "info",
            upstream_timeout_s: 10,
            kea_timeout_s: 60,
            check_interval_s: 60,
            ca_file: None,
            state_dir: None,
        }
    }
}

/// `kea-sync-agent run` for `kea` pushing to `receiver`, with its token in a 0600 file
/// beside agent.toml ([`token_file`]).
fn start_agent(kea: &KeaServer, receiver: &Receiver, options: AgentOptions) -> Agent {
    let agent = Agent::new().log_filter(options.log_filter);
    let token_file = token_file(&agent);
    write_private(&token_file, &format!("{}\n", receiver.token));
    let ca_file = options.ca_file.unwrap_or_else(|| receiver.ca_file.clone());
    let upstream = TomlTable::upstream(&receiver.url)
        .token_file(&token_file)
        .ca_file(&ca_file)
        .timeout_s(options.upstream_timeout_s);
    let service =
        TomlTable::service(Service::Dhcp4, &kea.config_path).timeout_s(options.kea_timeout_s);
    let mut toml = AgentToml::new()
        .check_interval_s(options.check_interval_s)
        .upstream(upstream)
        .service(service);
    if let Some(state_dir) = options.state_dir {
        toml = toml.state_dir(state_dir);
    }
    agent.start(&toml)
}

/// The agent's token file, beside its agent.toml.
fn token_file(agent: &Agent) -> PathBuf {
    agent.dir().join("token")
}

/// A token no log line could contain by accident.
fn new_token() -> String {
    format!("kst-{}-{}", ulid::Ulid::new(), std::process::id())
}

// ---------------------------------------------------------------------------------------
// A Kea, a receiver and an agent

/// Fields drop in order: the agent stops before Kea and the receiver go.
struct Setup {
    agent: Agent,
    kea: KeaServer,
    receiver: Receiver,
}

impl Setup {
    fn start(options: AgentOptions) -> Setup {
        Setup::start_with(small_body(), options)
    }

    fn start_with(body: Value, options: AgentOptions) -> Setup {
        let kea = start_kea(body);
        let receiver = Receiver::start(&new_token());
        let agent = start_agent(&kea, &receiver, options);
        Setup {
            agent,
            kea,
            receiver,
        }
    }

    /// Polls `done` until it holds; fails with the agent's, the receiver's and Kea's side.
    fn wait(&self, what: &str, within: Duration, mut done: impl FnMut(&Setup) -> bool) {
        self.agent
            .wait_while_running(what, within, || done(self), || self.context());
    }

    /// The agent's, the receiver's and Kea's side, for failure messages.
    fn context(&self) -> String {
        format!(
            "--- agent log (tail) ---\n{}\n--- receiver ---\n{}--- outbox ---\n{:?}\n\
             --- dead ---\n{:?}\n--- Kea log (tail) ---\n{}",
            tail(&self.agent.log(), 60),
            self.receiver.summary(),
            self.agent.outbox(),
            self.agent.dead(),
            tail(&self.kea.log(), 20)
        )
    }

    /// The stored events of `kind`.
    fn stored(&self, kind: &str) -> Vec<StoredEvent> {
        self.receiver
            .stored()
            .into_iter()
            .filter(|e| e.kind == kind)
            .collect()
    }

    /// Waits for the start-up snapshot (the agent has never pushed this Kea's config).
    fn startup_snapshot(&self) -> Value {
        self.wait("the start-up snapshot", WAIT, |s| {
            !s.stored("snapshot").is_empty()
        });
        self.stored("snapshot")[0].json()
    }

    /// Edits the file and waits until Kea runs the new lifetime after one more reload.
    fn edit_and_wait_live(&self, lifetime: u64) {
        let reloads = self.kea.reload_count();
        edit_lifetime(&self.kea, lifetime);
        self.wait(
            &format!("valid-lifetime {lifetime} live in Kea"),
            WAIT,
            |s| s.kea.reload_count() > reloads && live_lifetime(&s.kea) == Some(lifetime),
        );
    }

    /// Waits for the stored `applied` event with `lifetime`.
    fn applied_event(&self, lifetime: u64, within: Duration) -> Value {
        let find = |s: &Setup| {
            s.stored("applied")
                .iter()
                .map(StoredEvent::json)
                .find(|e| lifetime_of(e) == Some(lifetime))
        };
        self.wait(
            &format!("an applied event with valid-lifetime {lifetime}"),
            within,
            |s| find(s).is_some(),
        );
        find(self).expect("found just now")
    }

    /// Whether an event carrying `lifetime` is in the outbox or at the receiver.
    fn queued_or_stored(&self, lifetime: u64) -> bool {
        let outbox = self.agent.state_dir().join("outbox");
        let queued = self.agent.outbox().iter().any(|name| {
            fs::read(outbox.join(name))
                .ok()
                .and_then(|body| serde_json::from_slice::<Value>(&body).ok())
                .is_some_and(|event| lifetime_of(&event) == Some(lifetime))
        });
        queued
            || self
                .receiver
                .events()
                .iter()
                .any(|event| lifetime_of(event) == Some(lifetime))
    }

    /// The statuses answered to the requests that carried event `id`, and their times.
    fn attempts(&self, id: &str) -> Vec<(Option<u16>, Instant)> {
        self.receiver
            .requests()
            .into_iter()
            .filter(|r| r.id.as_deref() == Some(id))
            .map(|r| (r.status, r.at))
            .collect()
    }
}

/// A 26-character ULID in Crockford base32.
fn is_ulid(text: &str) -> bool {
    text.len() == 26
        && text
            .chars()
            .all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c))
}

fn rfc3339(event: &Value, field: &str) -> SystemTime {
    let text = event[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string: {event}"));
    humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{field} = {text}: {e}"))
}

// ---------------------------------------------------------------------------------------
// 1. The event itself

#[test]
fn edit_arrives_as_applied_event_carrying_keas_own_config() {
    let s = Setup::start(AgentOptions::default());
    let snapshot = s.startup_snapshot();
    assert_eq!(
        snapshot["config"],
        live_config(&s.kea),
        "the start-up snapshot carries Kea's in-memory config"
    );
    let before_edit = SystemTime::now();
    s.edit_and_wait_live(4321);
    let event = s.applied_event(4321, WAIT);

    assert_eq!(
        event["config"],
        live_config(&s.kea),
        "config is Kea's own config-get arguments without hash"
    );
    assert_eq!(event["schema"], "kea-sync-agent/event/v1");
    let id = event["id"].as_str().expect("id");
    assert!(is_ulid(id), "id {id} is a ULID");
    let host = fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(event["agent"]["host"], host.trim());
    assert!(event["agent"]["machine_id"].is_string(), "{event}");
    assert_eq!(event["agent"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(event["service"], "dhcp4");
    assert!(
        event["kea_version"]
            .as_str()
            .is_some_and(|v| v.contains("2.")),
        "kea_version: {}",
        event["kea_version"]
    );
    assert_eq!(event["kind"], "applied");
    assert_eq!(
        event["sequence"].as_u64(),
        snapshot["sequence"].as_u64().map(|n| n + 1),
        "sequence follows the start-up snapshot's"
    );
    assert_eq!(snapshot["sequence"], 1, "sequences start at 1");
    assert_eq!(
        event["file"]["path"],
        s.kea.config_path.display().to_string()
    );
    assert!(is_sha256_hex(&event["file"]["sha256"]), "{}", event["file"]);
    assert_ne!(
        event["file"]["sha256"], snapshot["file"]["sha256"],
        "the file's digest changes with its content"
    );
    assert!(
        is_sha256_hex(&event["config_hash"]),
        "{}",
        event["config_hash"]
    );
    assert!(event["text"].is_string());
    assert!(event.get("drift").is_none());
    let detected = rfc3339(&event, "detected_at");
    let applied = rfc3339(&event, "applied_at");
    let queued = rfc3339(&event, "queued_at");
    // Millisecond precision: the edit may be seen within the millisecond it was made.
    let before_edit = before_edit - Duration::from_millis(1);
    assert!(
        before_edit <= detected && detected <= applied && applied <= queued,
        "edit {before_edit:?} <= detected_at {detected:?} <= applied_at {applied:?} <= queued_at {queued:?}"
    );

    let requests = s.receiver.requests();
    let request = requests
        .iter()
        .find(|r| r.id.as_deref() == Some(id))
        .expect("the request of the applied event");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {}", s.receiver.token).as_str())
    );
    assert_eq!(request.header("idempotency-key"), Some(id));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("user-agent"),
        Some(concat!("kea-sync-agent/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(
        request.header("content-encoding"),
        None,
        "a small body is sent as is"
    );
    assert_eq!(request.status, Some(201));
    assert!(
        requests.iter().all(|r| r.status == Some(201)),
        "every request was accepted the first time:\n{}",
        s.context()
    );
}

// ---------------------------------------------------------------------------------------
// 2. Receiver away

#[test]
fn events_queued_while_receiver_is_away_all_arrive_in_order_once_it_is_back() {
    let mut s = Setup::start(AgentOptions::default());
    s.startup_snapshot();
    s.receiver.go_away();
    let lifetimes = [4101, 4102, 4103, 4104, 4105];
    for lifetime in lifetimes {
        s.edit_and_wait_live(lifetime);
    }
    s.wait("five applied events queued in the outbox", WAIT, |s| {
        s.agent
            .outbox()
            .iter()
            .filter(|n| n.contains(".applied."))
            .count()
            == 5
    });
    assert_eq!(
        s.receiver.stored().len(),
        1,
        "only the start-up snapshot arrived while the receiver was away"
    );

    s.receiver.come_back();
    s.wait("all applied events delivered", DELIVERY_WAIT, |s| {
        s.stored("applied").len() >= lifetimes.len() && s.agent.outbox().is_empty()
    });
    sleep(QUIET);

    let stored = s.receiver.stored();
    let context = s.context();
    let kinds: Vec<&str> = stored.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "snapshot", "applied", "applied", "applied", "applied", "applied"
        ],
        "{context}"
    );
    let sequences: Vec<u64> = stored.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        [1, 2, 3, 4, 5, 6],
        "arrival in sequence order: {context}"
    );
    let arrived: Vec<Option<u64>> = stored[1..].iter().map(|e| lifetime_of(&e.json())).collect();
    let expected: Vec<Option<u64>> = lifetimes.iter().map(|&l| Some(l)).collect();
    assert_eq!(arrived, expected, "each edit's config, in edit order");
    assert!(
        stored.iter().all(|e| e.deliveries == 1),
        "nothing delivered twice: {context}"
    );
    assert_eq!(
        lifetime_of(&stored[5].json()),
        live_lifetime(&s.kea),
        "the last event is what Kea runs"
    );
    assert!(s.agent.dead().is_empty(), "nothing refused");
}

// ---------------------------------------------------------------------------------------
// 3. SIGKILL anywhere

#[test]
fn sigkill_at_any_point_loses_no_event_and_repeats_no_sequence() {
    // A short upstream timeout, so stalled requests end while the test runs.
    let s = Setup::start(AgentOptions {
        upstream_timeout_s: 2,
        ..AgentOptions::default()
    });
    s.startup_snapshot();
    // Kill delays after the edit, dense where the agent settles, validates, reloads and
    // queues (about 50-250 ms here), with the receiver answering differently each round.
    let delays_ms = [
        0, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200, 230, 260, 300, 400, 600, 900,
    ];
    let answers = [
        Answer::Accept,
        Answer::Stall,
        Answer::AcceptSlowly(Duration::from_millis(300)),
        Answer::ServerError,
        Answer::AcceptSlowly(Duration::from_millis(50)),
        Answer::Stall,
        Answer::AcceptSlowly(Duration::from_millis(700)),
    ];
    let rounds = delays_ms.iter().zip(answers.iter().cycle());
    let mut lifetimes = Vec::new();
    for (round, (&delay_ms, answer)) in rounds.enumerate() {
        let lifetime = 5000 + round as u64;
        s.receiver.set_answer(answer.clone());
        edit_lifetime(&s.kea, lifetime);
        sleep(Duration::from_millis(delay_ms));
        s.agent.kill();
        s.agent.spawn();
        // Whether or not the killed agent got to it, the restarted one must apply it
        // and queue its event durably before the file changes again: content live only
        // between two restarts, superseded before the agent saw it, has no event.
        s.wait(
            &format!("round {round}: valid-lifetime {lifetime} live and its event queued"),
            WAIT,
            |s| live_lifetime(&s.kea) == Some(lifetime) && s.queued_or_stored(lifetime),
        );
        lifetimes.push(lifetime);
    }

    s.receiver.set_answer(Answer::Accept);
    let live = live_config(&s.kea);
    s.wait("the outbox drained", DELIVERY_WAIT, |s| {
        s.agent.outbox().is_empty()
            && s.receiver
                .events()
                .iter()
                .any(|e| e["config"] == live && e["kind"] != "drift")
    });
    sleep(QUIET);
    assert!(s.agent.outbox().is_empty(), "{:?}", s.agent.outbox());
    assert!(
        s.agent.dead().is_empty(),
        "nothing refused: {:?}",
        s.agent.dead()
    );

    let stored = s.receiver.stored();
    let context = s.context();
    let events: Vec<Value> = stored.iter().map(StoredEvent::json).collect();
    eprintln!(
        "{} rounds: {} events stored ({} applied, {} snapshot), {} repeat deliveries, {} Kea reloads",
        lifetimes.len(),
        stored.len(),
        stored.iter().filter(|e| e.kind == "applied").count(),
        stored.iter().filter(|e| e.kind == "snapshot").count(),
        stored.iter().map(|e| e.deliveries - 1).sum::<usize>(),
        s.kea.reload_count()
    );
    for e in &stored {
        assert_eq!(
            e.conflicting, 0,
            "id {} arrived with different bodies",
            e.id
        );
        assert!(
            e.kind == "applied" || e.kind == "snapshot",
            "only applied and snapshot events here, got {} #{}: {context}",
            e.kind,
            e.sequence
        );
        assert_eq!(e.service, "dhcp4");
    }
    // Distinct ids in arrival order: sequences strictly increase, so no sequence number
    // was given to two events and none arrived before an earlier one.
    let sequences: Vec<u64> = stored.iter().map(|e| e.sequence).collect();
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "sequences in arrival order {sequences:?}\n{context}"
    );
    // Every content that reached Kea was reported: applied (again, by the restarted agent,
    // when its predecessor died between the reload and queuing the event), or a snapshot
    // when the restarted agent found Kea already running it.
    for lifetime in &lifetimes {
        assert!(
            events.iter().any(|e| lifetime_of(e) == Some(*lifetime)),
            "no event carries valid-lifetime {lifetime}\n{context}"
        );
    }
    let mut known = lifetimes.clone();
    known.push(FIRST_LIFETIME);
    for e in &events {
        let lifetime = lifetime_of(e).unwrap_or_default();
        assert!(
            known.contains(&lifetime),
            "event #{} carries valid-lifetime {lifetime}, never written",
            e["sequence"]
        );
    }
    let applied = stored.iter().filter(|e| e.kind == "applied").count();
    assert!(
        applied <= s.kea.reload_count(),
        "{applied} applied events but Kea reloaded only {} times",
        s.kea.reload_count()
    );
    let last = events.last().expect("events");
    assert_eq!(
        last["config"], live,
        "the last event pushed carries the config Kea runs\n{context}"
    );
    assert_eq!(
        live_lifetime(&s.kea),
        lifetimes.last().copied(),
        "the last edit is live"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Refused events

#[test]
fn refused_event_goes_to_dead_with_its_reply_and_later_events_still_flow() {
    let s = Setup::start(AgentOptions::default());
    s.startup_snapshot();
    let reply = r#"{"error":"schema: unknown field 'frobnicate'"}"#;
    s.receiver
        .set_answer(Answer::Refuse(400, reply.to_string()));
    s.edit_and_wait_live(4200);
    s.wait("the refused event in dead/ with its reply", WAIT, |s| {
        s.agent.dead().len() == 2
    });
    let dead = s.agent.dead();
    let event_file = dead
        .iter()
        .find(|n| n.ends_with(".json"))
        .expect("the event file");
    assert_eq!(
        dead[1],
        format!("{event_file}.reply"),
        "the reply sits beside the event: {dead:?}"
    );
    let dead_dir = s.agent.state_dir().join("dead");
    let body: Value =
        serde_json::from_slice(&fs::read(dead_dir.join(event_file)).expect("read the dead event"))
            .expect("the dead event is JSON");
    assert_eq!(body["kind"], "applied");
    assert_eq!(lifetime_of(&body), Some(4200));
    let saved_reply = fs::read_to_string(dead_dir.join(&dead[1])).expect("read the reply");
    assert!(
        saved_reply.contains("400") && saved_reply.contains(reply),
        "the reply file holds the status and body: {saved_reply:?}"
    );
    let dead_id = body["id"].as_str().expect("id").to_string();
    assert!(s.agent.outbox().is_empty(), "{:?}", s.agent.outbox());

    s.receiver.set_answer(Answer::Accept);
    sleep(QUIET);
    assert_eq!(
        s.attempts(&dead_id).len(),
        1,
        "a refused event is not sent again\n{}",
        s.context()
    );
    s.edit_and_wait_live(4300);
    let later = s.applied_event(4300, WAIT);
    assert!(
        later["sequence"].as_u64() > body["sequence"].as_u64(),
        "the later event has a later sequence"
    );
    assert!(
        s.receiver.event(&dead_id).is_none(),
        "the refused event was not stored"
    );
    s.wait("the outbox drained", WAIT, |s| s.agent.outbox().is_empty());
    assert_eq!(s.attempts(&dead_id).len(), 1, "still not sent again");
}

/// docs/upstream-api.md: a snapshot is "sent at agent start ... when its hash differs from
/// the last one delivered". A refused event was not delivered: once the cause is fixed (a
/// receiver that refused the body here) and the agent restarted, the receiver must get the
/// config Kea runs, or it keeps the one from before the refused edit until the next edit.
#[test]
fn after_a_refused_event_a_restart_delivers_the_live_config_as_snapshot() {
    let s = Setup::start(AgentOptions::default());
    s.startup_snapshot();
    s.receiver
        .set_answer(Answer::Refuse(400, "not a valid event".into()));
    s.edit_and_wait_live(4250);
    s.wait("the refused event in dead/", WAIT, |s| {
        !s.agent.dead().is_empty()
    });
    s.receiver.set_answer(Answer::Accept);
    let status = s.agent.stop();
    assert!(status.success(), "SIGTERM: {status}");
    s.agent.spawn();
    let live = live_config(&s.kea);
    s.wait(
        "the live config (valid-lifetime 4250) delivered after the restart",
        WAIT,
        |s| s.receiver.events().iter().any(|e| e["config"] == live),
    );
}

// ---------------------------------------------------------------------------------------
// 5. Throttled and failing receiver

#[test]
fn throttled_or_failing_receiver_gets_the_event_on_a_later_attempt() {
    let s = Setup::start(AgentOptions::default());
    s.startup_snapshot();

    s.receiver.script([Answer::TooManyRequests]);
    s.edit_and_wait_live(4400);
    let event = s.applied_event(4400, WAIT);
    let attempts = s.attempts(event["id"].as_str().expect("id"));
    let statuses: Vec<Option<u16>> = attempts.iter().map(|a| a.0).collect();
    assert_eq!(statuses, [Some(429), Some(201)], "{}", s.context());
    let waited = attempts[1].1.duration_since(attempts[0].1);
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 honoured: the retry came {waited:?} after the 429"
    );

    s.receiver.script([Answer::ServerError]);
    s.edit_and_wait_live(4500);
    let event = s.applied_event(4500, WAIT);
    let statuses: Vec<Option<u16>> = s
        .attempts(event["id"].as_str().expect("id"))
        .iter()
        .map(|a| a.0)
        .collect();
    assert_eq!(statuses, [Some(500), Some(201)], "{}", s.context());

    s.wait("the outbox drained", WAIT, |s| s.agent.outbox().is_empty());
    assert!(s.agent.dead().is_empty(), "retryable answers never bury");
    let sequences: Vec<u64> = s.receiver.stored().iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, [1, 2, 3]);
}

// ---------------------------------------------------------------------------------------
// 6. Untrusted receiver

#[test]
fn receiver_whose_ca_is_not_trusted_gets_nothing_and_events_stay_queued() {
    let other_dir = tempfile::tempdir().expect("temp dir");
    let other_ca = TestCa::new("an unrelated CA").write(other_dir.path());
    let s = Setup::start(AgentOptions {
        ca_file: Some(other_ca),
        ..AgentOptions::default()
    });
    s.wait("a certificate error in the agent's log", WAIT, |s| {
        s.agent.log().to_lowercase().contains("certificate")
    });
    s.edit_and_wait_live(4600);
    s.wait("the snapshot and the applied event queued", WAIT, |s| {
        let outbox = s.agent.outbox();
        outbox.iter().any(|n| n.contains(".snapshot."))
            && outbox.iter().any(|n| n.contains(".applied."))
    });
    sleep(QUIET);
    assert!(
        s.receiver.requests().is_empty() && s.receiver.stored().is_empty(),
        "no request got through TLS: {}",
        s.context()
    );
    assert!(
        s.receiver.tls_failures() >= 1,
        "the agent did try to connect"
    );
    assert_eq!(s.agent.outbox().len(), 2, "{:?}", s.agent.outbox());
    assert!(
        s.agent.dead().is_empty(),
        "a TLS failure is retried, not buried"
    );
    let log = s.agent.log();
    let line = log
        .lines()
        .find(|l| l.to_lowercase().contains("certificate"))
        .expect("the certificate line");
    assert!(
        line.contains(&s.receiver.url) || line.contains("127.0.0.1"),
        "the error names the receiver: {line}"
    );
}

// ---------------------------------------------------------------------------------------
// 7. The token

#[test]
fn token_never_reaches_the_log_and_a_world_readable_token_file_is_refused() {
    let s = Setup::start(AgentOptions {
        log_filter: "debug",
        ..AgentOptions::default()
    });
    s.startup_snapshot();
    s.receiver.script([Answer::ServerError]);
    s.edit_and_wait_live(4700);
    s.applied_event(4700, WAIT);
    s.receiver
        .set_answer(Answer::Refuse(401, "bad token".into()));
    s.edit_and_wait_live(4800);
    s.wait("the 401 logged", WAIT, |s| {
        s.agent
            .log()
            .contains("upstream refuses the agent's credentials")
    });
    let status = s.agent.stop();
    assert!(status.success(), "SIGTERM: {status}");
    let log = s.agent.log();
    assert!(
        log.contains("DEBUG"),
        "debug logging was on:\n{}",
        tail(&log, 20)
    );
    assert!(
        !log.contains(&s.receiver.token),
        "the token appears in the agent's log"
    );
    let token_in_toml = fs::read_to_string(s.agent.toml()).expect("agent.toml");
    assert!(!token_in_toml.contains(&s.receiver.token));

    fs::set_permissions(token_file(&s.agent), fs::Permissions::from_mode(0o644))
        .expect("chmod 644");
    let logged_before = s.agent.log().len();
    s.agent.spawn();
    let status = s
        .agent
        .wait_exit(Duration::from_secs(30))
        .expect("the agent refuses to start");
    let said = s.agent.log()[logged_before..].to_string();
    assert_eq!(
        status.code(),
        Some(6),
        "exit code of a bad token file: {said}"
    );
    assert!(
        said.contains(&token_file(&s.agent).display().to_string()) && said.contains("chmod"),
        "the message names the file and the fix: {said}"
    );
    assert!(
        !said.contains(&s.receiver.token),
        "the token appears in the refusal"
    );
}

// ---------------------------------------------------------------------------------------
// 8. A 50 MB config

#[test]
fn fifty_megabyte_config_arrives_intact_and_gzipped() {
    // Unoptimized test builds move 50 MB slowly: Kea's start, the start-up snapshot,
    // validation, reload and the push each take tens of seconds.
    const LARGE_WAIT: Duration = Duration::from_secs(900);
    let s = Setup::start_with(
        large_dhcp4_body(22_000, 10),
        AgentOptions {
            upstream_timeout_s: 600,
            kea_timeout_s: 600,
            // No periodic check: its 50 MB config-get would compete with the test's.
            check_interval_s: 3600,
            ..AgentOptions::default()
        },
    );
    s.wait("the start-up snapshot", LARGE_WAIT, |s| {
        !s.stored("snapshot").is_empty()
    });
    edit_lifetime(&s.kea, 4900);
    // Only one edit: the first applied event is its event (parsing 50 MB is slow).
    s.wait("the applied event of the 50 MB config", LARGE_WAIT, |s| {
        !s.stored("applied").is_empty()
    });
    let stored = s.stored("applied").remove(0);
    let request = s
        .receiver
        .requests()
        .into_iter()
        .find(|r| r.id.as_deref() == Some(stored.id.as_str()) && r.status.is_some())
        .expect("the request of the applied event");
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    assert!(
        request.body_bytes < stored.body.len(),
        "gzip made it smaller: {} bytes sent for {}",
        request.body_bytes,
        stored.body.len()
    );
    assert!(s.kea.reload_count() >= 1, "Kea reloaded the edit");

    // Kea's side first, alone (see live_config), then both digests in parallel: each
    // is a parse and a serialization of 50 MB.
    let live = live_config(&s.kea);
    let pushed = std::thread::spawn(move || {
        let mut event = stored.json();
        let lifetime = lifetime_of(&event);
        (lifetime, canonical_digest(event["config"].take()))
    });
    let live = canonical_digest(live);
    let (lifetime, pushed) = pushed.join().expect("digest of the pushed config");
    assert_eq!(lifetime, Some(4900), "the applied event is the edit's");
    assert!(
        live.1 >= 50_000_000,
        "Kea's config is {} bytes, not the 50 MB this test is about",
        live.1
    );
    assert_eq!(
        pushed, live,
        "the pushed config is Kea's config-get (SHA-256 and length once canonical)"
    );
}

// ---------------------------------------------------------------------------------------
// One writer per outbox, what it holds, and the delivery in flight

/// The stored events' sequences of `service`, in arrival order.
fn sequences(receiver: &Receiver, service: &str) -> Vec<u64> {
    receiver
        .stored()
        .iter()
        .filter(|e| e.service == service)
        .map(|e| e.sequence)
        .collect()
}

#[test]
fn apply_beside_a_running_daemon_runs_inside_it_and_sequences_never_repeat() {
    let s = Setup::start(AgentOptions::default());
    s.startup_snapshot();
    s.edit_and_wait_live(4200);
    s.applied_event(4200, WAIT);

    // An operator's `apply` while the daemon runs: the daemon runs the check (its
    // own watcher may have applied the edit a moment before: then it is unchanged).
    edit_lifetime(&s.kea, 4300);
    let apply = s.agent.run("apply");
    let stdout = String::from_utf8_lossy(&apply.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&apply.stderr);
    assert_eq!(
        apply.status.code(),
        Some(0),
        "apply's exit\n{stdout}\n{stderr}"
    );
    let event: Value = serde_json::from_str(stdout.trim()).expect("one event, as JSON");
    assert!(
        ["applied", "unchanged"].contains(&event["outcome"].as_str().unwrap_or_default()),
        "{event}"
    );
    assert!(
        s.agent.log().contains("apply asked through the admin API"),
        "{}",
        s.context()
    );
    // Without an admin socket that answers: refused, naming the daemon.
    let elsewhere = s.agent.dir().join("elsewhere.toml");
    let text = fs::read_to_string(s.agent.toml()).expect("agent.toml");
    let socket = s.agent.admin_socket().display().to_string();
    fs::write(&elsewhere, text.replace(&socket, "/nonexistent/admin.sock")).expect("write");
    let apply = common::agent::run_agent(&["apply", "--config", &elsewhere.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&apply.stderr);
    assert_eq!(apply.status.code(), Some(2), "apply's exit\n{stderr}");
    assert!(apply.stdout.is_empty(), "no event printed: {apply:?}");
    let state_dir = s.agent.state_dir().display().to_string();
    assert!(
        stderr.contains(&state_dir)
            && stderr.contains(&format!("pid {}", s.agent.pid()))
            && stderr.contains("/nonexistent/admin.sock"),
        "the refusal names the state dir, the daemon's pid and the socket: {stderr}"
    );
    // The daemon applies that edit itself, and one more.
    s.applied_event(4300, WAIT);
    s.edit_and_wait_live(4400);
    s.applied_event(4400, WAIT);
    let seen = sequences(&s.receiver, "dhcp4");
    let want: Vec<u64> = (1..=seen.len() as u64).collect();
    assert_eq!(
        seen,
        want,
        "one writer: sequences 1, 2, 3... with none repeated\n{}",
        s.context()
    );
}

#[test]
fn a_full_state_dir_holds_the_applied_event_and_queues_it_once_there_is_room() {
    let disk = SmallDisk::mount("4m");
    let state_dir = disk.path().join("state");
    let mut s = Setup::start(AgentOptions {
        state_dir: Some(state_dir.clone()),
        ..AgentOptions::default()
    });
    s.startup_snapshot();
    s.wait("the outbox drained", WAIT, |s| s.agent.outbox().is_empty());
    s.receiver.go_away();
    let filler = disk.fill();

    s.edit_and_wait_live(4200);
    sleep(QUIET); // the agent tries to queue the applied event on the full disk
    assert!(
        !s.queued_or_stored(4200),
        "the full disk took nothing\n{}",
        s.context()
    );
    let (live_digest, _) = canonical_digest(live_config(&s.kea));
    fs::remove_file(&filler).expect("make room");
    s.receiver.come_back();

    let applied = s.applied_event(4200, DELIVERY_WAIT);
    assert_eq!(canonical_digest(applied["config"].clone()).0, live_digest);
    sleep(QUIET);
    let drifts = s.stored("drift");
    assert!(
        drifts.is_empty(),
        "the applied change arrived as what it was, not as a drift: {drifts:?}\n{}",
        s.context()
    );
    let seen = sequences(&s.receiver, "dhcp4");
    assert_eq!(seen, (1..=seen.len() as u64).collect::<Vec<u64>>());
    let state: Value = serde_json::from_str(
        &fs::read_to_string(state_dir.join("dhcp4.state.json"))
            .expect("the state once there is room"),
    )
    .expect("state JSON");
    assert_eq!(
        state["pushed_hash"], applied["config_hash"],
        "once queued, the state records it"
    );
}

/// A receiver that stores events but answers 1.5 s later, and an applied event whose
/// request is in flight (stored, not yet answered): returns the setup and the event's id.
fn delivery_in_flight() -> (Setup, String) {
    let s = Setup::start(AgentOptions::default());
    s.startup_snapshot();
    s.wait("the outbox drained", WAIT, |s| s.agent.outbox().is_empty());
    s.receiver
        .set_answer(Answer::AcceptSlowly(Duration::from_millis(1500)));
    s.edit_and_wait_live(4200);
    s.wait("the applied event in flight", WAIT, |s| {
        s.stored("applied").len() == 1
    });
    let id = s.stored("applied")[0].id.clone();
    (s, id)
}

/// The statuses answered to the requests carrying `id`: one 201 when it was delivered once.
fn answered(s: &Setup, id: &str) -> Vec<Option<u16>> {
    s.attempts(id).iter().map(|(status, _)| *status).collect()
}

#[test]
fn sigterm_lets_the_delivery_in_flight_finish() {
    let (s, id) = delivery_in_flight();
    let status = s.agent.stop();
    assert!(status.success(), "exit status {status}\n{}", s.context());
    assert_eq!(
        answered(&s, &id),
        [Some(201)],
        "the request in flight was answered, not cut\n{}",
        s.context()
    );
    assert!(
        s.agent.outbox().is_empty(),
        "a delivered event does not stay queued: {:?}",
        s.agent.outbox()
    );
}

#[test]
fn sighup_with_a_new_upstream_lets_the_delivery_in_flight_finish() {
    let (s, id) = delivery_in_flight();
    let toml = fs::read_to_string(s.agent.toml()).expect("read agent.toml");
    let changed = toml.replace("timeout_s = 10", "timeout_s = 11");
    assert_ne!(changed, toml, "the upstream table changes");
    fs::write(s.agent.toml(), changed).expect("write agent.toml");
    s.agent.signal(SIGHUP);
    s.wait("the reload", WAIT, |s| {
        s.agent.log().contains("agent config re-read")
    });
    s.wait("the outbox drained", WAIT, |s| s.agent.outbox().is_empty());
    sleep(QUIET);
    assert_eq!(
        answered(&s, &id),
        [Some(201)],
        "one request, finished by the old sinks, none repeated by the new\n{}",
        s.context()
    );
}

#[test]
fn drift_carries_the_config_kea_runs_and_is_sent_once() {
    let s = Setup::start(AgentOptions {
        check_interval_s: 1,
        ..AgentOptions::default()
    });
    s.startup_snapshot();
    // A central's config-set, never config-written: Kea runs what no file says.
    let mut arguments = live_config(&s.kea);
    arguments["Dhcp4"]["valid-lifetime"] = json!(4321);
    let reply = s
        .kea
        .command(&json!({"command": "config-set", "arguments": arguments}).to_string());
    assert_eq!(reply["result"], 0, "config-set: {reply}");
    s.wait("a drift event", WAIT, |s| !s.stored("drift").is_empty());
    let drift = s.stored("drift")[0].json();
    assert_eq!(
        lifetime_of(&drift),
        Some(4321),
        "the drift carries Kea's config"
    );
    let (want, _) = canonical_digest(live_config(&s.kea));
    assert_eq!(canonical_digest(drift["config"].clone()).0, want);
    assert!(drift["drift"]["live_hash"].is_string(), "{drift}");
    sleep(Duration::from_secs(3)); // three more periodic checks
    assert_eq!(
        s.stored("drift").len(),
        1,
        "the drifted config is delivered once\n{}",
        s.context()
    );
}
