//! One Kea serving DHCP on 127.0.0.1 (`-p PORT`), one HTTPS receiver, one agent between
//! them: the rig of the fault cases (tests/faults.rs) and the soak (tests/soak.rs), and
//! the invariant both end with, [`Rig::assert_invariant`]:
//!
//! - Kea serves: it answers, and holds its DHCP socket;
//! - its in-memory config is the last valid file written (its valid-lifetime marker), and
//!   the newest config the receiver holds is exactly Kea's in-memory config;
//! - nothing invalid was reloaded: no failed (re)configuration in Kea's log but of a file
//!   caught mid-write (Kea reads the file itself at config-reload: a writer that truncates
//!   it in the instant between the agent's last look and Kea's read makes Kea refuse what
//!   it read; Kea keeps its config, the agent rolls back and checks the new content), as
//!   many successful reloads as the agent reported (plus those a fault may have hidden),
//!   and no config upstream that was never written as a valid file;
//! - every event the agent logged reached the receiver, stored once by id with one body,
//!   with the service's sequences 1, 2, 3... (no gap, none repeated), and every applied
//!   change the agent logged is among the receiver's applied events.
//!
//! Include it with `#[path = "common/rig.rs"] mod rig;` beside `mod common;` and
//! `#[path = "common/receiver.rs"] mod receiver;`.
#![allow(dead_code)] // each test uses its own subset

use crate::common::agent::{Agent, AgentToml, TomlTable, is_event_line};
use crate::common::edit::Editor;
use crate::common::{
    KeaServer, backdate, free_udp_port, log_time, tail, udp_port_bound_by, write_private,
};
use crate::receiver::{Receiver, StoredEvent};
use kea_sync_agent::kea::Service;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

/// How long anything expected may take on a slow, shared machine.
pub const WAIT: Duration = Duration::from_secs(60);
/// Delivery after an outage waits out the agent's backoff (up to 60 s).
pub const DELIVERY_WAIT: Duration = Duration::from_secs(150);
const POLL: Duration = Duration::from_millis(20);
/// The valid-lifetime Kea starts with.
pub const FIRST_LIFETIME: u64 = 4000;
const GOOD_POOL: &str = "127.0.0.100 - 127.0.0.200";
/// A failed load Kea logs this soon after the rig finished a write read that write's
/// bytes mid-way (Kea parses a small file in a millisecond); the agent waits 50 ms (its
/// settle window) after a write before it reloads.
const MID_WRITE_SLACK: Duration = Duration::from_millis(20);

/// What a config file holds: valid, or wrong in one of the ways people get it wrong.
/// Each carries a valid-lifetime so that no two writes have the same bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// Serves 127.0.0.0/8 on lo.
    Valid(u64),
    /// A pool outside its subnet: `kea-dhcp4 -t` refuses it; Kea 2.2 would close its DHCP
    /// sockets before failing on it, so a reload of it shows on the socket too.
    PoolOutsideSubnet(u64),
    /// A string where Kea wants a number: good JSON, refused by Kea's parser.
    WrongType(u64),
    /// Cut off halfway: not even JSON (the agent waits a second for the writer first).
    Cut(u64),
}

impl Content {
    pub fn is_valid(self) -> bool {
        matches!(self, Content::Valid(_))
    }

    /// An invalid content with `lifetime`, the kind picked by `pick` (0, 1, 2...).
    pub fn invalid(pick: u64, lifetime: u64) -> Content {
        match pick % 3 {
            0 => Content::PoolOutsideSubnet(lifetime),
            1 => Content::WrongType(lifetime),
            _ => Content::Cut(lifetime),
        }
    }
}

/// How to build the rig.
#[derive(Clone, Debug)]
pub struct RigOptions {
    /// `[agent] check_interval_s`: the periodic full check.
    pub check_interval_s: u64,
    /// `[[service]] timeout_s`: of one exchange with Kea (a hung Kea costs this much).
    pub kea_timeout_s: u64,
    /// Subnets beside the one on lo, to make reloads slow (10.x.y.0/24 each).
    pub filler_subnets: usize,
    /// Kea is stopped before the agent starts (the agent finds no socket).
    pub kea_down_at_start: bool,
    /// `[agent] state_dir`; None: `state` in the agent's dir.
    pub state_dir: Option<PathBuf>,
    /// A command the agent runs under ([`Agent::run_under`]).
    pub wrapper: Vec<&'static str>,
    /// The control socket the agent is given instead of Kea's own (a proxy's).
    pub control_socket: Option<PathBuf>,
}

impl Default for RigOptions {
    fn default() -> Self {
        RigOptions {
            check_interval_s: 60,
            kea_timeout_s: 10,
            filler_subnets: 0,
            kea_down_at_start: false,
            state_dir: None,
            wrapper: Vec::new(),
            control_socket: None,
        }
    }
}

/// What the invariant check counted.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Events stored at the receiver (distinct ids), and of which kind.
    pub stored: usize,
    pub applied: usize,
    pub snapshots: usize,
    pub drifts: usize,
    pub rejected: usize,
    /// Deliveries of an id already stored (answers lost to a kill or an outage).
    pub repeat_deliveries: usize,
    /// Applied changes stored again under a new id (a killed agent's change redone).
    pub repeated_changes: usize,
    /// Kea's failed loads of a file the rig was writing at the time.
    pub caught_mid_write: usize,
    /// Kea's successful reloads, and the agent's Applied and Rejected log lines.
    pub kea_reloads: usize,
    pub applied_logged: usize,
    pub rejected_logged: usize,
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Kea reloads {}; agent logged {} applied, {} rejected; receiver stored {} events \
             ({} applied, {} snapshot, {} drift, {} rejected), {} repeat deliveries, \
             {} changes stored again under a new id; {} failed loads of a file caught mid-write",
            self.kea_reloads,
            self.applied_logged,
            self.rejected_logged,
            self.stored,
            self.applied,
            self.snapshots,
            self.drifts,
            self.rejected,
            self.repeat_deliveries,
            self.repeated_changes,
            self.caught_mid_write
        )
    }
}

/// Kea, the receiver and the agent. Fields drop in order: the agent stops first.
pub struct Rig {
    pub agent: Agent,
    pub kea: KeaServer,
    pub receiver: Receiver,
    /// Kea serves DHCP on 127.0.0.1:port.
    pub port: u16,
    filler_subnets: usize,
    /// Every valid-lifetime written in a valid file, in order; the last must be live.
    valid: Vec<u64>,
    /// The next fresh valid-lifetime.
    next_lifetime: u64,
    /// Reloads the agent may have done without reporting them (it was SIGKILLed, or Kea
    /// died or hung while reloading).
    pub hidden_reloads: usize,
    /// The agent was SIGKILLed: a change it had queued but not recorded is redone and
    /// stored again under a new id.
    pub agent_killed: bool,
    /// When each write began and ended.
    writes: Vec<(SystemTime, SystemTime)>,
}

impl Rig {
    /// Kea on its file (backdated: the agent finds it in sync), a receiver, the agent.
    pub fn start(options: RigOptions) -> Rig {
        let port = free_udp_port();
        let text = config_text(Content::Valid(FIRST_LIFETIME), options.filler_subnets);
        let mut kea = KeaServer::start_with_args(Service::Dhcp4, &text, &["-p", &port.to_string()]);
        backdate(&kea.config_path);
        if options.kea_down_at_start {
            kea.stop();
            assert!(
                !kea.socket_path.exists(),
                "a stopped Kea removes its socket"
            );
        }
        let receiver = Receiver::start(&format!("kst-faults-{}", ulid::Ulid::new()));
        let agent = start_agent(&kea, &receiver, &options);
        Rig {
            agent,
            kea,
            receiver,
            port,
            filler_subnets: options.filler_subnets,
            valid: vec![FIRST_LIFETIME],
            next_lifetime: FIRST_LIFETIME + 1,
            hidden_reloads: 0,
            agent_killed: false,
            writes: Vec::new(),
        }
    }

    /// Waits for the agent's start-up: Kea found in sync with its file, and that config
    /// stored at the receiver as a snapshot.
    pub fn wait_started(&self) {
        self.wait_logged("InSync", 1);
        self.wait("the start-up snapshot delivered", WAIT, |rig| {
            let snapshots = rig
                .receiver
                .stored()
                .iter()
                .filter(|e| e.kind == "snapshot")
                .count();
            match (snapshots, rig.agent.outbox().len()) {
                (1.., 0) => Ok(()),
                (snapshots, queued) => {
                    Err(format!("{snapshots} snapshot(s) stored, {queued} queued"))
                }
            }
        });
    }

    /// A valid-lifetime never written before.
    pub fn fresh_lifetime(&mut self) -> u64 {
        self.next_lifetime += 1;
        self.next_lifetime - 1
    }

    /// Writes `content` into Kea's config file the way `editor` does.
    pub fn write(&mut self, content: Content, editor: Editor) {
        let text = self.text_of(content);
        let began = SystemTime::now();
        editor.write(&self.kea.config_path, &text);
        self.wrote(content, began, SystemTime::now());
    }

    /// The text of `content` for Kea's config file.
    pub fn text_of(&self, content: Content) -> String {
        config_text(content, self.filler_subnets)
            .replace("@SOCKET@", &self.kea.socket_path.to_string_lossy())
            .replace("@LOG@", &self.kea.log_path.to_string_lossy())
    }

    /// Notes a write of `content` into Kea's config file, from `began` to `ended` (a
    /// test that writes it some other way than [`Rig::write`] says so here).
    pub fn wrote(&mut self, content: Content, began: SystemTime, ended: SystemTime) {
        if let Content::Valid(lifetime) = content {
            self.valid.push(lifetime);
        }
        self.writes.push((began, ended));
    }

    /// Writes `content` with a fresh valid-lifetime the way `editor` does; returns it.
    pub fn write_new(&mut self, content: fn(u64) -> Content, editor: Editor) -> u64 {
        let lifetime = self.fresh_lifetime();
        self.write(content(lifetime), editor);
        lifetime
    }

    /// Writes a fresh valid content by rename; returns its valid-lifetime.
    pub fn edit(&mut self) -> u64 {
        self.write_new(Content::Valid, Editor::RenameOver)
    }

    /// The valid-lifetime of the last valid file written.
    pub fn last_valid(&self) -> u64 {
        *self.valid.last().expect("Kea started on a valid file")
    }

    /// SIGKILLs the agent and starts it again on the same state.
    pub fn kill_agent(&mut self) {
        self.agent.kill();
        self.agent_killed = true;
        self.hidden_reloads += 1;
        self.agent.spawn();
    }

    /// Polls `ready` (Err says what is still missing) until it is Ok; fails with the
    /// agent's, the receiver's and Kea's side when `within` passes or the agent exits.
    pub fn wait(
        &self,
        what: &str,
        within: Duration,
        mut ready: impl FnMut(&Rig) -> Result<(), String>,
    ) {
        let deadline = Instant::now() + within;
        loop {
            let missing = match ready(self) {
                Ok(()) => return,
                Err(missing) => missing,
            };
            let why = match self.agent.exited() {
                Some(status) => format!("the agent exited ({status})"),
                None if Instant::now() > deadline => format!("timed out after {within:?}"),
                None => {
                    sleep(POLL);
                    continue;
                }
            };
            panic!("{why} waiting for {what}: {missing}\n{}", self.context());
        }
    }

    /// Waits until Kea runs valid-lifetime `lifetime`.
    pub fn wait_live(&self, lifetime: u64) {
        self.wait(
            &format!("valid-lifetime {lifetime} live"),
            WAIT,
            |rig| match rig.live_lifetime() {
                Some(live) if live == lifetime => Ok(()),
                live => Err(format!("Kea runs {live:?}")),
            },
        );
    }

    /// Waits until the agent has logged `n` events with `outcome` in all.
    pub fn wait_logged(&self, outcome: &str, n: usize) {
        self.wait(
            &format!("{n} {outcome} event(s) in the agent's log"),
            WAIT,
            |rig| {
                let seen = rig.agent.events(outcome).len();
                if seen >= n {
                    Ok(())
                } else {
                    Err(format!("{seen} so far"))
                }
            },
        );
    }

    /// Kea's in-memory config (config-get's arguments without `hash`).
    pub fn live_config(&self) -> Value {
        let mut reply = self.kea.command(r#"{"command":"config-get"}"#);
        assert_eq!(reply["result"], 0, "config-get: {}", reply["text"]);
        let mut arguments = reply["arguments"].take();
        if let Some(map) = arguments.as_object_mut() {
            map.remove("hash");
        }
        arguments
    }

    pub fn live_lifetime(&self) -> Option<u64> {
        self.live_config()["Dhcp4"]["valid-lifetime"].as_u64()
    }

    /// Whether Kea holds its DHCP socket on 127.0.0.1:port.
    pub fn serving(&self) -> bool {
        udp_port_bound_by(self.port, self.kea.pid())
    }

    /// The agent's, the receiver's and Kea's side, for failure messages.
    pub fn context(&self) -> String {
        format!(
            "--- agent log (tail) ---\n{}\n--- receiver (tail) ---\n{}\n--- outbox ---\n{:?}\n\
             --- Kea log (tail) ---\n{}",
            tail(&self.agent.log(), 60),
            tail(&self.receiver.summary(), 30),
            self.agent.outbox(),
            tail(&self.kea.log(), 20)
        )
    }

    /// Waits until everything is delivered and Kea runs the last valid file, then checks
    /// the invariant (module doc) and returns what it counted.
    pub fn assert_invariant(&self) -> Tally {
        let want = self.last_valid();
        self.wait(
            &format!("valid-lifetime {want} live and every event delivered"),
            DELIVERY_WAIT,
            |rig| rig.settled(want),
        );
        let context = || self.context();
        assert!(
            self.serving(),
            "Kea (pid {}) does not hold 127.0.0.1:{}/udp\n{}",
            self.kea.pid(),
            self.port,
            context()
        );
        let (caught, failed): (Vec<String>, Vec<String>) = self
            .kea
            .failed_reloads()
            .into_iter()
            .partition(|line| self.caught_mid_write(line));
        assert!(
            failed.is_empty(),
            "Kea failed to load a config the rig had finished writing: {failed:#?}\n{}",
            context()
        );

        let logged = logged_events(&self.agent.log());
        let stored = self.receiver.stored();
        let mut tally = tally(&logged, &stored, self.kea.reload_count());
        // DHCP4_CONFIG_LOAD_FAIL and ..._RECONFIGURATION_FAIL: two lines a load.
        tally.caught_mid_write = caught.len().div_ceil(2);
        assert!(
            tally.applied_logged <= tally.kea_reloads
                && tally.kea_reloads <= tally.applied_logged + self.hidden_reloads,
            "Kea reloaded {} times, the agent reported {} (up to {} more may be hidden by faults)\n{}",
            tally.kea_reloads,
            tally.applied_logged,
            self.hidden_reloads,
            context()
        );
        assert!(
            tally.applied <= tally.kea_reloads,
            "{} applied events but only {} reloads\n{}",
            tally.applied,
            tally.kea_reloads,
            context()
        );

        for event in &stored {
            assert_eq!(
                event.conflicting,
                0,
                "id {} arrived with different bodies\n{}",
                event.id,
                context()
            );
        }
        // The first arrival out of order, with its neighbours and what the agent logged of
        // them, before the long context: a gap is a lost event, a repeat a reused number.
        let due = stored
            .iter()
            .zip(1u64..)
            .position(|(e, due)| e.sequence != due);
        if let Some(at) = due {
            let near = &stored[at.saturating_sub(3)..(at + 4).min(stored.len())];
            let lines: Vec<String> = near
                .iter()
                .map(|e| {
                    format!(
                        "#{} {} {} ({} deliveries)",
                        e.sequence, e.kind, e.id, e.deliveries
                    )
                })
                .collect();
            let log = self.agent.log();
            let logged: Vec<&str> = log
                .lines()
                .filter(|line| near.iter().any(|e| line.contains(&e.id)))
                .collect();
            panic!(
                "arrival {} carries sequence {} where {} was due (a gap is a lost event, a \
                 repeat a reused number); arrivals around it:\n{}\n--- agent log lines naming \
                 them ---\n{}\n{}",
                at + 1,
                stored[at].sequence,
                at + 1,
                lines.join("\n"),
                logged.join("\n"),
                context()
            );
        }
        // Nothing but valid files' content went live and upstream.
        let mut valid: BTreeSet<u64> = self.valid.iter().copied().collect();
        valid.insert(FIRST_LIFETIME);
        for event in stored.iter().map(StoredEvent::json) {
            if event.get("config").is_none() {
                continue;
            }
            let lifetime = event["config"]["Dhcp4"]["valid-lifetime"].as_u64();
            assert!(
                lifetime.is_some_and(|l| valid.contains(&l)),
                "event #{} ({}) carries valid-lifetime {lifetime:?}, never written valid\n{}",
                event["sequence"],
                event["kind"],
                context()
            );
        }
        // Every applied change logged is stored (by its config hash: a change held back
        // for a full state dir was logged before it had an id).
        let mut logged_changes: BTreeMap<&str, usize> = BTreeMap::new();
        for event in logged.iter().filter(|e| e.outcome == "Applied") {
            *logged_changes
                .entry(event.config_hash.as_deref().unwrap_or("-"))
                .or_default() += 1;
        }
        let stored_applied: Vec<Value> = stored
            .iter()
            .filter(|e| e.kind == "applied")
            .map(StoredEvent::json)
            .collect();
        for (hash, times) in &logged_changes {
            let at_receiver = stored_applied
                .iter()
                .filter(|e| e["config_hash"].as_str() == Some(hash))
                .count();
            // An event held in memory for a full state dir dies with a SIGKILLed agent;
            // its successor redoes the change, so the change arrives, once.
            let times = if self.agent_killed { 1 } else { *times };
            assert!(
                at_receiver >= times,
                "the agent logged {times} applied change(s) to config {hash}, the receiver holds {at_receiver}\n{}",
                context()
            );
        }
        if !self.agent_killed {
            assert_eq!(
                tally.repeated_changes,
                0,
                "an applied change stored twice under two ids, with no kill to explain it\n{}",
                context()
            );
            assert_eq!(
                tally.applied,
                tally.applied_logged,
                "applied events stored vs logged, with no kill to hide one\n{}",
                context()
            );
        }
        tally
    }

    /// Ok once Kea runs `want`, the outbox is empty, every id the agent logged is stored,
    /// and the newest config at the receiver is Kea's; else what is still missing.
    /// Whether Kea logged this failed load while the rig was writing the file (or just
    /// after, [`MID_WRITE_SLACK`]).
    fn caught_mid_write(&self, line: &str) -> bool {
        let Some(at) = log_time(line) else {
            return false;
        };
        // Kea's times are cut to the millisecond.
        let at_most = at + Duration::from_millis(1);
        self.writes
            .iter()
            .any(|&(began, ended)| began <= at_most && at <= ended + MID_WRITE_SLACK)
    }

    fn settled(&self, want: u64) -> Result<(), String> {
        let outbox = self.agent.outbox();
        if !outbox.is_empty() {
            return Err(format!("{} event(s) still in the outbox", outbox.len()));
        }
        let stored = self.receiver.stored();
        let ids: BTreeSet<&str> = stored.iter().map(|e| e.id.as_str()).collect();
        let log = self.agent.log();
        if let Some(missing) = log
            .lines()
            .filter_map(|line| field(line, "event"))
            .find(|id| *id != "-" && !ids.contains(id))
        {
            return Err(format!("event {missing} was logged but not stored"));
        }
        // Last: config-get of a large config takes a second.
        let live = self.live_config();
        let lifetime = live["Dhcp4"]["valid-lifetime"].as_u64();
        if lifetime != Some(want) {
            return Err(format!("Kea runs valid-lifetime {lifetime:?}"));
        }
        let newest = stored
            .iter()
            .rev()
            .map(StoredEvent::json)
            .find(|e| e.get("config").is_some());
        match newest {
            Some(event) if event["config"] == live => Ok(()),
            Some(event) => Err(format!(
                "the newest config at the receiver (#{} {}, valid-lifetime {}) is not Kea's",
                event["sequence"], event["kind"], event["config"]["Dhcp4"]["valid-lifetime"]
            )),
            None => Err("no config at the receiver".into()),
        }
    }
}

/// Counts the receiver's events and the agent's log lines.
fn tally(logged: &[Logged], stored: &[StoredEvent], kea_reloads: usize) -> Tally {
    let kind = |kind: &str| stored.iter().filter(|e| e.kind == kind).count();
    let outcome = |outcome: &str| logged.iter().filter(|e| e.outcome == outcome).count();
    // The same config applied twice in a row: one change, stored under two ids.
    let applied_hashes: Vec<Option<String>> = stored
        .iter()
        .filter(|e| e.kind != "rejected")
        .map(|e| e.json()["config_hash"].as_str().map(str::to_string))
        .collect();
    Tally {
        stored: stored.len(),
        applied: kind("applied"),
        snapshots: kind("snapshot"),
        drifts: kind("drift"),
        rejected: kind("rejected"),
        repeat_deliveries: stored.iter().map(|e| e.deliveries - 1).sum(),
        repeated_changes: applied_hashes.windows(2).filter(|w| w[0] == w[1]).count(),
        caught_mid_write: 0,
        kea_reloads,
        applied_logged: outcome("Applied"),
        rejected_logged: outcome("Rejected"),
    }
}

/// One event line of the agent's log.
struct Logged {
    outcome: String,
    config_hash: Option<String>,
}

/// The agent's event lines (`outcome=...`), with their config hash.
fn logged_events(log: &str) -> Vec<Logged> {
    log.lines()
        .filter(|line| is_event_line(line))
        .filter_map(|line| {
            Some(Logged {
                outcome: field(line, "outcome")?.to_string(),
                config_hash: field(line, "config_hash")
                    .filter(|hash| *hash != "-")
                    .map(str::to_string),
            })
        })
        .collect()
}

/// The value of ` name=value` (quotes stripped) in a log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=");
    let start = line.find(&key)? + key.len();
    let rest = &line[start..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"')?],
        None => rest.split_whitespace().next()?,
    };
    Some(value)
}

/// The agent for `kea`, pushing to `receiver` with its token in a 0600 file.
fn start_agent(kea: &KeaServer, receiver: &Receiver, options: &RigOptions) -> Agent {
    let agent = Agent::new().run_under(&options.wrapper);
    let token = agent.dir().join("token");
    write_private(&token, &receiver.token);
    let upstream = TomlTable::upstream(&receiver.url)
        .token_file(&token)
        .ca_file(&receiver.ca_file)
        .timeout_s(5);
    let service = TomlTable::service(Service::Dhcp4, &kea.config_path)
        .control_socket(options.control_socket.as_ref().unwrap_or(&kea.socket_path))
        .timeout_s(options.kea_timeout_s);
    let mut toml = AgentToml::new()
        .check_interval_s(options.check_interval_s)
        .upstream(upstream)
        .service(service);
    if let Some(dir) = &options.state_dir {
        toml = toml.state_dir(dir);
    }
    agent.start(&toml)
}

/// Kea's config file with the harness's `@SOCKET@` and `@LOG@`.
fn config_text(content: Content, filler_subnets: usize) -> String {
    let (lifetime, pool) = match content {
        Content::Valid(l) | Content::Cut(l) => (l.to_string(), GOOD_POOL),
        Content::PoolOutsideSubnet(l) => (l.to_string(), "10.255.255.100 - 10.255.255.200"),
        Content::WrongType(l) => (format!("\"{l} seconds\""), GOOD_POOL),
    };
    let filler: String = (0..filler_subnets)
        .map(|i| {
            let prefix = format!("10.{}.{}", i / 256, i % 256);
            format!(
                ",\n      {{ \"id\": {}, \"subnet\": \"{prefix}.0/24\", \"pools\": [ {{ \"pool\": \"{prefix}.10 - {prefix}.200\" }} ] }}",
                i + 2
            )
        })
        .collect();
    let text = format!(
        r#"// written by tests/common/rig.rs
{{
  "Dhcp4": {{
    "interfaces-config": {{ "interfaces": [ "lo" ], "dhcp-socket-type": "udp" }},
    "control-socket": {{ "socket-type": "unix", "socket-name": "@SOCKET@" }},
    "lease-database": {{ "type": "memfile", "persist": false }},
    "loggers": [ {{
      "name": "kea-dhcp4",
      "output_options": [ {{ "output": "@LOG@" }} ],
      "severity": "INFO"
    }} ],
    /* the marker the tests change */
    "valid-lifetime": {lifetime},
    "subnet4": [
      {{ "id": 1, "subnet": "127.0.0.0/8", "interface": "lo", "pools": [ {{ "pool": "{pool}" }} ] }}{filler}
    ]
  }}
}}
"#
    );
    match content {
        // Right after the marker: its bytes stay unique, its JSON unterminated.
        Content::Cut(_) => text[..text.find("\"subnet4\"").unwrap_or(text.len() / 2)].to_string(),
        _ => text,
    }
}
