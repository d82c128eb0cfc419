//! Never leave DHCP worse than it was: files that pass Kea's validator and still fail
//! when Kea loads them (a lease database that cannot be reached, a hook library that
//! fails to load), on the host's Kea 2.2 and on Kea 3.0 from a Debian sid root
//! (scripts/kea-roots). Each Kea serves DHCP on 127.0.0.1 (`-p PORT`); each test asserts
//! with `ss` that it still does, that Kea's in-memory config is the old one, and what
//! the agent's events (its outbox) say. Also: changes made through Kea's API go upstream
//! before an edit's reload drops them.

mod common;

use common::agent::{Agent, AgentToml, TomlTable};
use common::{
    KeaServer, backdate, free_udp_port, kea_root, root_validator, tail, udp_port_bound_by,
};
use kea_sync_agent::kea::Service;
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const HOOKS: &str = "/usr/lib/x86_64-linux-gnu/kea/hooks";

/// What a test file holds, as the parts that differ.
#[derive(Clone)]
enum Variant {
    Good(u64),
    /// A PostgreSQL lease database on 127.0.0.1:1, where nobody listens.
    UnreachableLeaseDatabase,
    /// The HA hook with a `this-server-name` that is none of its peers.
    HaPeerTypo,
    /// A hook library (`HOOK`) whose `load()` makes the daemon exit: `-t` checks only
    /// its version, so the file passes; config-reload kills Kea.
    ExitingHook(PathBuf),
}

/// A Dhcp4 config serving 127.0.0.0/8 on lo, with the harness's placeholders.
fn config(variant: Variant, kea3: bool) -> String {
    let (lifetime, leases, hooks) = match variant {
        Variant::Good(lifetime) => (
            lifetime,
            json!({"type": "memfile", "persist": false}),
            json!([]),
        ),
        Variant::UnreachableLeaseDatabase => {
            // Kea 3.x has its SQL backends in hook libraries.
            let hooks = if kea3 {
                json!([{"library": format!("{HOOKS}/libdhcp_pgsql.so")}])
            } else {
                json!([])
            };
            let leases = json!({"type": "postgresql", "name": "kea", "host": "127.0.0.1",
                "port": 1, "user": "kea", "password": "not-a-secret"});
            (4000, leases, hooks)
        }
        Variant::HaPeerTypo => {
            let ha = json!({"high-availability": [{
                "this-server-name": "server1-typo",
                "mode": "hot-standby",
                "peers": [
                    {"name": "server1", "url": "http://127.0.0.1:18101/", "role": "primary"},
                    {"name": "server2", "url": "http://127.0.0.1:18102/", "role": "standby"},
                ],
            }]});
            let hooks = json!([
                {"library": format!("{HOOKS}/libdhcp_lease_cmds.so")},
                {"library": format!("{HOOKS}/libdhcp_ha.so"), "parameters": ha},
            ]);
            (4000, json!({"type": "memfile", "persist": false}), hooks)
        }
        Variant::ExitingHook(library) => (
            4000,
            json!({"type": "memfile", "persist": false}),
            json!([{"library": library}]),
        ),
    };
    let body = json!({"Dhcp4": {
        "interfaces-config": {"interfaces": ["lo"], "dhcp-socket-type": "udp"},
        "control-socket": {"socket-type": "unix", "socket-name": "@SOCKET@"},
        "lease-database": leases,
        "hooks-libraries": hooks,
        "subnet4": [{"id": 1, "subnet": "127.0.0.0/8", "interface": "lo",
                     "pools": [{"pool": "127.0.0.100 - 127.0.0.200"}]}],
        "valid-lifetime": lifetime,
        "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": "@LOG@"}],
                     "severity": "INFO"}],
    }});
    serde_json::to_string_pretty(&body).expect("config JSON")
}

/// A Kea serving DHCP on lo, and an agent in front of it with an empty state.
struct Setup {
    agent: Agent,
    kea: KeaServer,
    port: u16,
    kea3: bool,
    root: Option<PathBuf>,
}

impl Setup {
    /// `root`: run Kea 3.0 from the sid root; `extra`: more lines of the service table.
    /// The Kea in PATH is the host's 2.2, or 2.6/3.0 when scripts/kea-matrix runs the
    /// suite inside a root.
    fn start(root: Option<&Path>, extra: &[&str]) -> Setup {
        let port = free_udp_port();
        // The sid root's, or the Kea in PATH when the suite runs inside a root.
        let kea3 = root.is_some() || common::kea_release()[0] >= 3;
        let kea = KeaServer::start_in(
            root,
            Service::Dhcp4,
            &config(Variant::Good(4000), kea3),
            &["-p", &port.to_string()],
        );
        backdate(&kea.config_path);
        let agent = Agent::new();
        let mut service =
            TomlTable::service(Service::Dhcp4, &kea.config_path).control_socket(&kea.socket_path);
        if let Some(root) = root {
            service = service.path(
                "validator",
                &root_validator(root, Service::Dhcp4, agent.dir()),
            );
        }
        for line in extra {
            service = service.line(line);
        }
        let agent = agent.start(&AgentToml::new().service(service));
        let s = Setup {
            agent,
            kea,
            port,
            kea3,
            root: root.map(Path::to_path_buf),
        };
        s.wait("the agent's first look at Kea", |s| {
            s.agent.event_count() >= 1
        });
        assert!(
            s.serving(),
            "Kea should serve 127.0.0.1:{port} from the start"
        );
        s
    }

    fn serving(&self) -> bool {
        udp_port_bound_by(self.port, self.kea.pid())
    }

    fn wait(&self, what: &str, mut done: impl FnMut(&Setup) -> bool) {
        let context = || {
            format!(
                "--- agent log ---\n{}\n--- Kea log ---\n{}",
                tail(&self.agent.log(), 40),
                tail(&self.kea.log(), 30)
            )
        };
        self.agent
            .wait_while_running(what, WAIT, || done(self), context);
    }

    /// Writes `variant` as Kea's config file (by rename, as tools do).
    fn edit(&self, variant: Variant) {
        let text = config(variant, self.kea3);
        let root = self.root.as_deref();
        let text = text
            .replace("@SOCKET@", &seen(root, &self.kea.socket_path))
            .replace("@LOG@", &seen(root, &self.kea.log_path));
        let temp = self.kea.config_path.with_extension("conf.new");
        fs::write(&temp, text).expect("write the edit");
        fs::rename(&temp, &self.kea.config_path).expect("rename over Kea's config");
    }

    /// The agent's events of `kind`, from its outbox, in sequence order.
    fn events(&self, kind: &str) -> Vec<Value> {
        outbox_events(self.agent.state_dir())
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }

    /// Waits for the `n`th event of `kind` and returns it.
    fn nth_event(&self, kind: &str, n: usize) -> Value {
        self.wait(&format!("{n} {kind} event(s)"), |s| {
            s.events(kind).len() >= n
        });
        self.events(kind)[n - 1].clone()
    }

    /// Kea's in-memory lease database and hook libraries.
    fn live(&self) -> (Value, Value) {
        let reply = self.kea.command(r#"{"command":"config-get"}"#);
        let dhcp4 = &reply["arguments"]["Dhcp4"];
        (
            dhcp4["lease-database"].clone(),
            dhcp4["hooks-libraries"].clone(),
        )
    }

    fn lifetime(&self) -> Option<u64> {
        let reply = self.kea.command(r#"{"command":"config-get"}"#);
        reply["arguments"]["Dhcp4"]["valid-lifetime"].as_u64()
    }

    /// A bad edit is refused and Kea keeps serving its old config; `reloaded`: whether
    /// Kea saw the file (and so the agent rolled back) or not (refused before).
    fn expect_refused(&self, variant: Variant, nth: usize, reloaded: bool, kea_said: &str) {
        let before = self.live();
        let reloads = self.kea.reload_count();
        self.edit(variant);
        let event = self.nth_event("rejected", nth);
        let text = event["text"].as_str().unwrap_or_default();
        assert!(
            text.contains(kea_said),
            "the event carries Kea's own error ({kea_said:?}): {event}"
        );
        if reloaded {
            assert_eq!(event["rolled_back"], json!(true), "{event}");
            assert_eq!(event["serving"], json!(true), "{event}");
            assert!(
                text.contains("Kea runs the last good config"),
                "says plainly what runs: {text}"
            );
        } else {
            assert_eq!(
                event.get("rolled_back"),
                None,
                "refused before Kea saw it: nothing to roll back: {event}"
            );
            assert_eq!(self.kea.reload_count(), reloads, "Kea never saw the file");
        }
        assert!(
            self.serving(),
            "Kea (pid {}) lost 127.0.0.1:{}/udp\n{}",
            self.kea.pid(),
            self.port,
            tail(&self.kea.log(), 20)
        );
        assert_eq!(self.live(), before, "Kea runs the old config");
        let secrets = outbox_text(self.agent.state_dir());
        assert!(
            !secrets.contains("not-a-secret"),
            "a rejected config never goes upstream"
        );
    }

    /// A good edit afterwards goes live, and Kea still serves.
    fn expect_good_edit(&self, lifetime: u64, nth_applied: usize) {
        self.edit(Variant::Good(lifetime));
        let applied = self.nth_event("applied", nth_applied);
        assert_eq!(
            applied["config"]["Dhcp4"]["valid-lifetime"],
            json!(lifetime)
        );
        assert_eq!(applied["serving"], json!(true), "{applied}");
        assert_eq!(self.lifetime(), Some(lifetime));
        assert!(self.serving(), "Kea serves after the good edit");
        // Kept as the next reload's way back (written once the event is queued).
        let last_good = self.agent.state_dir().join("dhcp4.last-good.json");
        self.wait("the applied config kept as the last good one", |_| {
            std::fs::read(&last_good)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                .is_some_and(|kept| kept["Dhcp4"]["valid-lifetime"] == json!(lifetime))
        });
    }
}

/// `path` as Kea in `root` sees it.
fn seen(root: Option<&Path>, path: &Path) -> String {
    common::in_root(root, path).to_string_lossy().into_owned()
}

/// The events in `state_dir/outbox`, by sequence.
fn outbox_events(state_dir: &Path) -> Vec<Value> {
    let mut events: Vec<Value> = outbox_files(state_dir)
        .iter()
        .filter_map(|path| fs::read(path).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect();
    events.sort_by_key(|e| e["sequence"].as_u64());
    events
}

fn outbox_text(state_dir: &Path) -> String {
    outbox_files(state_dir)
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .collect()
}

fn outbox_files(state_dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(state_dir.join("outbox"))
        .map(|read| {
            read.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The Kea in PATH (the host's 2.2; 2.6 or 3.0 in scripts/kea-matrix): the failures reach
// config-reload, and the agent rolls back. 2.2 has no -T; on 2.4+ validation = "basic"
// keeps -T from refusing them first (that refusal: kea_3_0_full_validation_...).

/// The service lines that let a file -t passes reach config-reload on any Kea.
const TO_RELOAD: &[&str] = &["validation = \"basic\""];

#[test]
fn an_unreachable_lease_database_is_rolled_back_and_dhcp_keeps_serving() {
    let s = Setup::start(None, TO_RELOAD);
    s.expect_refused(
        Variant::UnreachableLeaseDatabase,
        1,
        true,
        "Unable to open database",
    );
    s.expect_good_edit(4100, 1);
    // Kea's configs (and so its database passwords) at rest: the agent's user and group.
    let state = s.agent.state_dir();
    assert_eq!(mode(state), 0o750);
    assert_eq!(mode(&state.join("outbox")), 0o750);
    assert_eq!(mode(&state.join("dhcp4.last-good.json")), 0o600);
    for file in outbox_files(state) {
        assert_eq!(mode(&file), 0o640, "{}", file.display());
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_hook_that_fails_to_load_is_rolled_back_and_dhcp_keeps_serving() {
    let s = Setup::start(None, TO_RELOAD);
    s.expect_refused(
        Variant::HaPeerTypo,
        1,
        true,
        "One or more hook libraries failed to load",
    );
    // Not retried while the file stays as it is, not even by the periodic look.
    sleep(Duration::from_secs(1));
    assert_eq!(s.events("rejected").len(), 1);
    assert!(
        s.events("drift").is_empty(),
        "no drift loop after a rollback"
    );
    s.expect_good_edit(4100, 1);
}

/// Builds a hook library for the Kea in PATH whose `load()` exits the process, in `dir`.
fn exiting_hook(dir: &Path) -> PathBuf {
    let source = dir.join("exit.c");
    let library = dir.join("libexit_on_load.so");
    // KEA_HOOKS_VERSION (what Kea's own hooks' version() returns): 20200 for 2.2.0.
    let hooks_version = common::kea_release()
        .iter()
        .fold(0, |version, n| version * 100 + n);
    fs::write(
        &source,
        format!(
            "#include <unistd.h>\nint version(void) {{ return {hooks_version}; }}\n\
             int multi_threading_compatible(void) {{ return 1; }}\n\
             int load(void *handle) {{ (void)handle; _exit(3); }}\n"
        ),
    )
    .expect("write the hook's source");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .status()
        .expect("run cc (scripts/install-deps installs gcc)");
    assert!(built.success(), "cc failed building the hook");
    library
}

#[test]
fn a_kea_that_exits_on_the_file_is_reported_not_serving() {
    let mut s = Setup::start(None, TO_RELOAD);
    let hooks = tempfile::tempdir().expect("temp dir");
    s.edit(Variant::ExitingHook(exiting_hook(hooks.path())));
    let event = s.nth_event("rejected", 1);
    assert_eq!(event["serving"], json!(false), "{event}");
    assert_eq!(event["rolled_back"], json!(false), "{event}");
    assert!(
        event["text"]
            .as_str()
            .is_some_and(|t| t.contains("serves no DHCP until it is restarted")),
        "{event}"
    );
    // The event is durable in the outbox a moment before its log line is written.
    s.wait("an outage logged as an error", |s| {
        s.agent
            .log()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("outcome=Rejected"))
    });
    // systemd's way back: Kea restarted on a good file; the agent takes Kea as it finds it.
    s.edit(Variant::Good(4100));
    backdate(&s.kea.config_path);
    s.kea.restart();
    s.wait("the agent to meet the restarted Kea", |s| {
        s.agent.events("InSync").len() >= 2
    });
    assert_eq!(s.lifetime(), Some(4100));
    assert!(s.serving(), "the restarted Kea serves");
}

// ---------------------------------------------------------------------------------------
// Kea 3.0 (the sid root): -T refuses both before Kea sees them; with validation =
// "basic" the reload fails and the agent rolls back

#[test]
fn kea_3_0_full_validation_refuses_both_before_kea_sees_them() {
    let root = kea_root();
    let s = Setup::start(Some(&root), &[]);
    assert!(s.kea.version().starts_with("3."), "Kea 3 from the sid root");
    s.expect_refused(
        Variant::UnreachableLeaseDatabase,
        1,
        false,
        "Connection refused",
    );
    s.expect_refused(
        Variant::HaPeerTypo,
        2,
        false,
        "One or more hook libraries failed to load",
    );
    s.expect_good_edit(4100, 1);
}

#[test]
fn kea_3_0_basic_validation_rolls_back_what_the_reload_fails_on() {
    let root = kea_root();
    let s = Setup::start(Some(&root), &["validation = \"basic\""]);
    s.expect_refused(
        Variant::UnreachableLeaseDatabase,
        1,
        true,
        "Unable to open database",
    );
    s.expect_refused(
        Variant::HaPeerTypo,
        2,
        true,
        "One or more hook libraries failed to load",
    );
    s.expect_good_edit(4100, 1);
    // The next failure rolls back to the config kept after that apply.
    s.expect_refused(
        Variant::UnreachableLeaseDatabase,
        3,
        true,
        "Unable to open database",
    );
    assert_eq!(s.lifetime(), Some(4100), "rolled back to the applied edit");
}

// ---------------------------------------------------------------------------------------
// Changes made through Kea's API survive an edit upstream

/// A central's config-set, never config-written: Kea runs valid-lifetime 4321.
fn config_set_lifetime(s: &Setup, lifetime: u64) {
    let reply = s.kea.command(r#"{"command":"config-get"}"#);
    let mut arguments = reply["arguments"].clone();
    if let Some(map) = arguments.as_object_mut() {
        map.remove("hash");
    }
    arguments["Dhcp4"]["valid-lifetime"] = json!(lifetime);
    let set = s
        .kea
        .command(&json!({"command": "config-set", "arguments": arguments}).to_string());
    assert_eq!(set["result"], 0, "config-set: {set}");
}

#[test]
fn runtime_changes_go_upstream_as_a_drift_before_the_edit_reloads_them_away() {
    let s = Setup::start(None, &[]);
    config_set_lifetime(&s, 4321);
    s.expect_good_edit(4100, 1);
    assert_drift_right_before(&s, 4321, 1);
}

/// The first drift carries `lifetime`, the runtime config, and comes right before the
/// `nth_applied` applied edit.
fn assert_drift_right_before(s: &Setup, lifetime: u64, nth_applied: usize) {
    let drift = s.nth_event("drift", 1);
    let applied = s.nth_event("applied", nth_applied);
    assert_eq!(
        drift["config"]["Dhcp4"]["valid-lifetime"],
        json!(lifetime),
        "the drift carries the runtime config: {drift}"
    );
    assert_eq!(
        drift["sequence"].as_u64().map(|n| n + 1),
        applied["sequence"].as_u64(),
        "the drift comes right before the applied edit"
    );
}

#[test]
fn with_runtime_changes_kept_an_edit_is_refused_until_they_are_written() {
    let s = Setup::start(None, &["runtime_changes = \"keep\""]);
    config_set_lifetime(&s, 4321);
    s.edit(Variant::Good(4100));
    let rejected = s.nth_event("rejected", 1);
    assert!(
        rejected["text"]
            .as_str()
            .is_some_and(|t| t.contains("config-write")),
        "tells what to do: {rejected}"
    );
    let drift = s.nth_event("drift", 1);
    assert_eq!(drift["config"]["Dhcp4"]["valid-lifetime"], json!(4321));
    assert_eq!(s.lifetime(), Some(4321), "the runtime change is still live");
    assert!(s.serving());
}

// ---------------------------------------------------------------------------------------
// After its own reload the agent knows what Kea runs until Kea reconfigures

/// The commands Kea logged receiving, in order.
fn commands_received(kea_log: &str) -> Vec<String> {
    kea_log
        .lines()
        .filter_map(|line| line.split_once("COMMAND_RECEIVED Received command '"))
        .filter_map(|(_, rest)| rest.split_once('\'').map(|(name, _)| name.to_string()))
        .collect()
}

/// What the agent asked Kea for the latest edit: the commands from the status-get that
/// opened its check to its config-reload.
fn asked_before_last_reload(kea_log: &str) -> Vec<String> {
    let commands = commands_received(kea_log);
    let reload = commands
        .iter()
        .rposition(|c| c == "config-reload")
        .expect("a config-reload in Kea's log");
    let opened = commands[..reload]
        .iter()
        .rposition(|c| c == "status-get")
        .expect("a status-get before the config-reload");
    commands[opened + 1..reload].to_vec()
}

fn reloads_ask_only_the_commit_statistic(root: Option<&Path>) {
    let s = Setup::start(root, &[]);
    s.expect_good_edit(4100, 1);
    assert_eq!(
        asked_before_last_reload(&s.kea.log()),
        ["statistic-get"],
        "Kea has not reconfigured since it loaded the files the agent found it running\n{}",
        tail(&s.kea.log(), 30)
    );
    s.expect_good_edit(4200, 2);
    assert_eq!(
        asked_before_last_reload(&s.kea.log()),
        ["statistic-get"],
        "Kea has not reconfigured since the agent's reload: no config-get or config-hash-get \
         (a serialization of the whole config) before the next one\n{}",
        tail(&s.kea.log(), 30)
    );
}

#[test]
fn after_its_own_reload_the_agent_asks_no_config_before_the_next_kea_in_path() {
    reloads_ask_only_the_commit_statistic(None);
}

#[test]
fn after_its_own_reload_the_agent_asks_no_config_before_the_next_kea_3_0() {
    reloads_ask_only_the_commit_statistic(Some(&kea_root()));
}

fn config_set_after_the_agents_reload_is_a_drift(root: Option<&Path>) {
    let s = Setup::start(root, &[]);
    s.expect_good_edit(4100, 1);
    // At once: the central's config-set lands right behind the agent's reload.
    config_set_lifetime(&s, 4321);
    s.expect_good_edit(4200, 2);
    assert_drift_right_before(&s, 4321, 2);
    let asked = asked_before_last_reload(&s.kea.log());
    assert!(
        asked.iter().any(|c| c == "config-get"),
        "the config-set stamped the commit statistic anew, so the agent fetched Kea's config: {asked:?}"
    );
}

#[test]
fn a_config_set_right_after_the_agents_reload_still_goes_upstream_kea_in_path() {
    config_set_after_the_agents_reload_is_a_drift(None);
}

#[test]
fn a_config_set_right_after_the_agents_reload_still_goes_upstream_kea_3_0() {
    config_set_after_the_agents_reload_is_a_drift(Some(&kea_root()));
}
