//! `kea-sync-agent run` end to end: config files edited the ways editors, scripts and
//! deployment tools do, against a real kea-dhcp4 (2.2) per test. Assertions are on Kea
//! itself (config-get, successful reloads counted in its log), not on the agent's word.

mod common;

use common::agent::{Agent, AgentToml, TomlTable};
use common::{KeaServer, SIGHUP, SIGTERM, backdate, free_udp_port, tail, udp_port_bound_by};
use kea_sync_agent::kea::Service;
use serde_json::{Value, json};
use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long anything expected may take (slow, shared machines).
const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);
/// Time given to the agent to do something it should not, before counting.
const QUIET: Duration = Duration::from_millis(700);
/// What the agent gets after SIGTERM to finish the apply in flight and exit.
const EXIT_WITHIN: Duration = Duration::from_secs(5);
const FIRST_LIFETIME: u32 = 4000;

// ---------------------------------------------------------------------------------------
// Kea config texts and Kea-side observations

/// A Dhcp4 config in Kea's dialect (comments) with the harness's `@SOCKET@`/`@LOG@`;
/// `body` goes after the fixed part, inside the Dhcp4 map.
fn dhcp4_config(interfaces_config: &str, body: &str) -> String {
    format!(
        r#"// written by tests/agent_e2e.rs
{{
  "Dhcp4": {{
    "interfaces-config": {interfaces_config},
    "control-socket": {{ "socket-type": "unix", "socket-name": "@SOCKET@" }},
    "lease-database": {{ "type": "memfile", "persist": false }},
    "loggers": [ {{
      "name": "kea-dhcp4",
      "output_options": [ {{ "output": "@LOG@" }} ],
      "severity": "INFO"
    }} ],
    /* what the tests change */
    {body}
  }}
}}
"#
    )
}

fn lifetime_line(valid_lifetime: u32) -> String {
    format!(r#""valid-lifetime": {valid_lifetime}"#)
}

/// The config most tests run: no interfaces, one valid-lifetime to change.
fn standard_config(valid_lifetime: u32) -> String {
    dhcp4_config(r#"{ "interfaces": [] }"#, &lifetime_line(valid_lifetime))
}

/// `text` with the harness placeholders filled in for `kea`, as it is on disk.
fn materialize(kea: &KeaServer, text: &str) -> String {
    text.replace("@SOCKET@", &kea.socket_path.to_string_lossy())
        .replace("@DIR@", &kea.dir.to_string_lossy())
        .replace("@LOG@", &kea.log_path.to_string_lossy())
}

/// kea-dhcp4 from `text` with its config file backdated.
fn start_kea(text: &str) -> KeaServer {
    let kea = KeaServer::start_with_file(Service::Dhcp4, text);
    backdate(&kea.config_path);
    kea
}

/// `valid-lifetime` of Kea's in-memory config.
fn valid_lifetime(kea: &KeaServer) -> Option<u64> {
    let reply = kea.command(r#"{"command":"config-get"}"#);
    reply["arguments"]["Dhcp4"]["valid-lifetime"].as_u64()
}

/// The pools of Kea's first in-memory subnet.
fn first_subnet_pools(kea: &KeaServer) -> Value {
    let reply = kea.command(r#"{"command":"config-get"}"#);
    reply["arguments"]["Dhcp4"]["subnet4"][0]["pools"].clone()
}

// ---------------------------------------------------------------------------------------
// The agent process

/// How to run the agent.
#[derive(Clone, Copy)]
struct AgentOptions<'a> {
    /// `control_socket` of the `[[service]]` table; None: the one Kea's config names.
    control_socket: Option<&'a Path>,
    check_interval_s: u64,
    /// `settle_ms` of `[agent]`.
    settle_ms: u64,
    /// KEA_SYNC_AGENT_LOG.
    log_filter: &'a str,
}

const DEFAULT_AGENT: AgentOptions<'static> = AgentOptions {
    control_socket: None,
    check_interval_s: 60,
    settle_ms: 50,
    log_filter: "info",
};

/// `kea-sync-agent run` watching `config_file` as dhcp4, in a new dir with empty state.
fn start_agent(config_file: &Path, options: AgentOptions<'_>) -> Agent {
    let mut service = TomlTable::service(Service::Dhcp4, config_file);
    if let Some(socket) = options.control_socket {
        service = service.control_socket(socket);
    }
    let toml = AgentToml::new()
        .settle_ms(options.settle_ms)
        .check_interval_s(options.check_interval_s)
        .service(service);
    Agent::new().log_filter(options.log_filter).start(&toml)
}

/// Polls `done` until it holds; fails with the agent's log and Kea's log tail.
fn wait_until(what: &str, kea: &KeaServer, agent: &Agent, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        let dead = agent.exited();
        if dead.is_some() || Instant::now() > deadline {
            let why = match dead {
                Some(status) => format!("the agent exited ({status})"),
                None => format!("timed out after {WAIT:?}"),
            };
            panic!(
                "{why} waiting for {what}\n--- agent log ---\n{}\n--- Kea log (tail) ---\n{}",
                tail(&agent.log(), 80),
                tail(&kea.log(), 40)
            );
        }
        sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------
// A Kea with a settled agent in front of it

/// Fields drop in order: the agent stops before Kea does.
struct Fixture {
    agent: Agent,
    kea: KeaServer,
    /// Kea's successful reloads once the agent had settled.
    base_reloads: usize,
    /// The agent's Applied events once it had settled.
    base_applied: usize,
}

impl Fixture {
    /// Kea running `text` (backdated), then the agent watching Kea's config file.
    fn start(text: &str) -> Fixture {
        let kea = start_kea(text);
        let agent = start_agent(&kea.config_path, DEFAULT_AGENT);
        Fixture::settle(kea, agent)
    }

    /// Waits for the agent's first event, which must find Kea in sync (the file is older
    /// than Kea's start-up load), and takes the counts from there.
    fn settle(kea: KeaServer, agent: Agent) -> Fixture {
        wait_until("the agent's first event", &kea, &agent, || {
            agent.event_count() >= 1
        });
        assert_eq!(
            agent.events("InSync").len(),
            1,
            "the agent's first event should find Kea in sync with the backdated file\n{}",
            agent.log()
        );
        let base_reloads = kea.reload_count();
        let base_applied = agent.events("Applied").len();
        Fixture {
            agent,
            kea,
            base_reloads,
            base_applied,
        }
    }

    /// The standard config with `valid_lifetime`, as it would be on disk.
    fn text(&self, valid_lifetime: u32) -> String {
        materialize(&self.kea, &standard_config(valid_lifetime))
    }

    fn wait(&self, what: &str, done: impl FnMut() -> bool) {
        wait_until(what, &self.kea, &self.agent, done);
    }

    fn reloads(&self) -> usize {
        self.kea.reload_count().saturating_sub(self.base_reloads)
    }

    fn applied(&self) -> usize {
        self.agent
            .events("Applied")
            .len()
            .saturating_sub(self.base_applied)
    }

    /// Waits until `valid_lifetime` is live after `reloads` reloads in all (since the agent
    /// settled) and the agent reported them; then, after a quiet spell, asserts exactly
    /// that many successful reloads, no failed one, and the value still live.
    fn expect_live(&self, valid_lifetime: u32, reloads: usize) {
        let want = Some(u64::from(valid_lifetime));
        self.wait(
            &format!("valid-lifetime {valid_lifetime} live after {reloads} reload(s)"),
            || {
                self.reloads() >= reloads
                    && self.applied() >= reloads
                    && valid_lifetime_of(self) == want
            },
        );
        sleep(QUIET);
        self.assert_counts(reloads);
        assert_eq!(valid_lifetime_of(self), want, "in-memory valid-lifetime");
    }

    /// After a quiet spell: still exactly `reloads` reloads (since the agent settled).
    fn expect_no_more_reloads(&self, reloads: usize) {
        sleep(QUIET);
        self.assert_counts(reloads);
    }

    fn assert_counts(&self, reloads: usize) {
        let context = || {
            format!(
                "--- agent log ---\n{}\n--- Kea log (tail) ---\n{}",
                tail(&self.agent.log(), 60),
                tail(&self.kea.log(), 30)
            )
        };
        assert_eq!(
            self.reloads(),
            reloads,
            "Kea's successful reloads\n{}",
            context()
        );
        assert_eq!(
            self.applied(),
            reloads,
            "the agent's Applied events\n{}",
            context()
        );
        let failed = self.kea.failed_reloads();
        assert!(
            failed.is_empty(),
            "Kea saw failed reloads: {failed:#?}\n{}",
            context()
        );
    }
}

fn valid_lifetime_of(fixture: &Fixture) -> Option<u64> {
    valid_lifetime(&fixture.kea)
}

/// Writes `text` to a temp file beside `path` and renames it over `path`.
fn write_by_rename(path: &Path, text: &str) {
    let temp = path.with_extension("conf.tmp-agent-e2e");
    fs::write(&temp, text).expect("write temp file");
    fs::rename(&temp, path).expect("rename over the config");
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(status.success(), "{program} {args:?}: {status}");
}

// ---------------------------------------------------------------------------------------
// How a file gets edited: each real edit is exactly one reload

#[test]
fn in_place_write_reloads_once() {
    let f = Fixture::start(&standard_config(FIRST_LIFETIME));
    fs::write(&f.kea.config_path, f.text(4100)).expect("write in place");
    f.expect_live(4100, 1);
}

#[test]
fn write_paused_halfway_reloads_once_with_the_whole_file() {
    let f = Fixture::start(&standard_config(FIRST_LIFETIME));
    let text = f.text(4100);
    let (head, rest) = text.split_at(text.len() / 2);
    let mut file = fs::File::create(&f.kea.config_path).expect("truncate");
    file.write_all(head.as_bytes())
        .expect("write the first half");
    file.flush().expect("flush");
    sleep(Duration::from_millis(300));
    file.write_all(rest.as_bytes()).expect("write the rest");
    drop(file);
    f.expect_live(4100, 1);
    let rejected = f.agent.events("Rejected");
    assert!(
        rejected.is_empty(),
        "the half-written file was reported: {rejected:#?}"
    );
}

#[test]
fn rename_over_reloads_once() {
    let f = Fixture::start(&standard_config(FIRST_LIFETIME));
    write_by_rename(&f.kea.config_path, &f.text(4100));
    f.expect_live(4100, 1);
}

#[test]
fn sed_in_place_reloads_once() {
    let f = Fixture::start(&standard_config(FIRST_LIFETIME));
    let script = format!(
        "s/{}/{}/",
        lifetime_line(FIRST_LIFETIME),
        lifetime_line(4100)
    );
    run(
        "sed",
        &["-i", "-e", &script, &f.kea.config_path.to_string_lossy()],
    );
    f.expect_live(4100, 1);
}

#[test]
fn cp_over_reloads_once() {
    let f = Fixture::start(&standard_config(FIRST_LIFETIME));
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let source = elsewhere.path().join("kea-dhcp4.conf.new");
    fs::write(&source, f.text(4100)).expect("write the new file");
    run(
        "cp",
        &[
            &source.to_string_lossy(),
            &f.kea.config_path.to_string_lossy(),
        ],
    );
    f.expect_live(4100, 1);
}

#[test]
fn remove_and_recreate_reloads_once() {
    let f = Fixture::start(&standard_config(FIRST_LIFETIME));
    fs::remove_file(&f.kea.config_path).expect("remove");
    // Longer than the settle time: the agent looks while the file is missing.
    sleep(Duration::from_millis(200));
    fs::write(&f.kea.config_path, f.text(4100)).expect("recreate");
    f.expect_live(4100, 1);
    let rejected = f.agent.events("Rejected");
    assert!(
        rejected.is_empty(),
        "the missing file was reported: {rejected:#?}"
    );
}

#[test]
fn symlinked_config_file_follows_edits_of_its_target() {
    let kea = start_kea(&standard_config(FIRST_LIFETIME));
    let links = tempfile::tempdir().expect("temp dir");
    let link = links.path().join("kea-dhcp4.conf");
    symlink(&kea.config_path, &link).expect("symlink to Kea's config");
    let agent = start_agent(&link, DEFAULT_AGENT);
    let f = Fixture::settle(kea, agent);

    fs::write(&f.kea.config_path, f.text(4100)).expect("edit the target in place");
    f.expect_live(4100, 1);
    write_by_rename(&f.kea.config_path, &f.text(4200));
    f.expect_live(4200, 2);
}

#[test]
fn data_symlink_swap_reloads_once_per_swap() {
    // Kubernetes ConfigMap layout: kea-dhcp4.conf -> ..data/kea-dhcp4.conf, ..data -> ..v1.
    let kea = start_kea(&standard_config(FIRST_LIFETIME));
    let dir = kea.dir.clone();
    let write_version = |version: &str, text: &str| {
        let version_dir = dir.join(version);
        fs::create_dir(&version_dir).expect("create version dir");
        let file = version_dir.join("kea-dhcp4.conf");
        fs::write(&file, text).expect("write version file");
        file
    };
    let original = fs::read_to_string(&kea.config_path).expect("read Kea's config");
    backdate(&write_version("..v1", &original));
    symlink("..v1", dir.join("..data")).expect("..data -> ..v1");
    symlink("..data/kea-dhcp4.conf", dir.join("kea-dhcp4.conf.link")).expect("link");
    fs::rename(dir.join("kea-dhcp4.conf.link"), &kea.config_path).expect("link over");
    let agent = start_agent(&kea.config_path, DEFAULT_AGENT);
    let f = Fixture::settle(kea, agent);

    let swap = |old: &str, new: &str, text: &str| {
        write_version(new, text);
        symlink(new, dir.join("..data_tmp")).expect("..data_tmp -> new version");
        fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap ..data");
        fs::remove_dir_all(dir.join(old)).expect("remove the old version");
    };
    swap("..v1", "..v2", &f.text(4100));
    f.expect_live(4100, 1);
    swap("..v2", "..v3", &f.text(4200));
    f.expect_live(4200, 2);
}

#[test]
fn editing_an_included_file_reloads_once_per_edit() {
    let includes = tempfile::tempdir().expect("temp dir");
    let include = includes.path().join("lifetime.json");
    fs::write(&include, lifetime_line(FIRST_LIFETIME)).expect("write include");
    backdate(&include);
    let body = format!(r#"<?include "{}"?>"#, include.display());
    let kea = start_kea(&dhcp4_config(r#"{ "interfaces": [] }"#, &body));
    let agent = start_agent(&kea.config_path, DEFAULT_AGENT);
    let f = Fixture::settle(kea, agent);
    assert_eq!(valid_lifetime_of(&f), Some(u64::from(FIRST_LIFETIME)));

    fs::write(&include, lifetime_line(4100)).expect("edit include");
    f.expect_live(4100, 1);
    write_by_rename(&include, &lifetime_line(4200));
    f.expect_live(4200, 2);

    // A newly included file is watched from the reload that brought it in.
    let second = includes.path().join("lifetime-2.json");
    fs::write(&second, lifetime_line(4300)).expect("write second include");
    let body = format!(r#"<?include "{}"?>"#, second.display());
    let text = materialize(&f.kea, &dhcp4_config(r#"{ "interfaces": [] }"#, &body));
    fs::write(&f.kea.config_path, text).expect("switch to the second include");
    f.expect_live(4300, 3);
    fs::write(&second, lifetime_line(4400)).expect("edit the second include");
    f.expect_live(4400, 4);
}

// ---------------------------------------------------------------------------------------
// What is not an edit: no reload

#[test]
fn touch_and_identical_rewrite_do_not_reload() {
    let f = Fixture::start(&standard_config(FIRST_LIFETIME));
    run("touch", &[&f.kea.config_path.to_string_lossy()]);
    f.expect_no_more_reloads(0);

    let unchanged = f.agent.events("Unchanged").len();
    fs::write(&f.kea.config_path, f.text(FIRST_LIFETIME)).expect("identical rewrite");
    f.wait("the agent to look at the rewritten file", || {
        f.agent.events("Unchanged").len() > unchanged
    });
    f.expect_no_more_reloads(0);

    fs::write(&f.kea.config_path, f.text(4100)).expect("a real edit");
    f.expect_live(4100, 1);
}

#[test]
fn editor_swap_and_backup_files_do_not_reload() {
    let f = Fixture::start(&standard_config(FIRST_LIFETIME));
    fs::write(
        f.kea.dir.join(".kea-dhcp4.conf.swp"),
        b"b0VIM 9.0\0\0garbage",
    )
    .expect("swp");
    fs::write(f.kea.dir.join("kea-dhcp4.conf~"), f.text(4100)).expect("backup");
    f.expect_no_more_reloads(0);
    assert_eq!(valid_lifetime_of(&f), Some(u64::from(FIRST_LIFETIME)));

    fs::write(&f.kea.config_path, f.text(4200)).expect("a real edit");
    f.expect_live(4200, 1);
}

// ---------------------------------------------------------------------------------------
// Bursts, invalid content

#[test]
fn fifty_saves_in_a_second_coalesce_into_few_reloads() {
    let f = Fixture::start(&standard_config(FIRST_LIFETIME));
    // One save every 20 ms, alternately in place and by rename: 50 within a second.
    let started = Instant::now();
    for (i, lifetime) in (5001..=5050).enumerate() {
        let text = f.text(lifetime);
        if i % 2 == 0 {
            fs::write(&f.kea.config_path, text).expect("write in place");
        } else {
            write_by_rename(&f.kea.config_path, &text);
        }
        let next = started + Duration::from_millis(20) * (u32::try_from(i).expect("small") + 1);
        sleep(next.saturating_duration_since(Instant::now()));
    }
    f.wait("the last save live", || valid_lifetime_of(&f) == Some(5050));
    f.wait("the agent to report it", || f.applied() >= 1);
    sleep(QUIET);
    let reloads = f.reloads();
    assert!(
        (1..=10).contains(&reloads),
        "50 saves gave {reloads} reloads\n{}",
        f.agent.log()
    );
    assert_eq!(f.applied(), reloads, "Applied events vs Kea's reloads");
    assert_eq!(valid_lifetime_of(&f), Some(5050));
    let failed = f.kea.failed_reloads();
    assert!(failed.is_empty(), "failed reloads: {failed:#?}");
}

/// A config with a real DHCP socket on lo (for `-p PORT`) and one 127.0.0.0/8 subnet.
fn lo_config(valid_lifetime: u32, pool: &str) -> String {
    let subnet = json!([{
        "id": 1,
        "subnet": "127.0.0.0/8",
        "interface": "lo",
        "pools": [{"pool": pool}],
    }]);
    dhcp4_config(
        r#"{ "interfaces": [ "lo" ], "dhcp-socket-type": "udp" }"#,
        &format!(r#"{}, "subnet4": {subnet}"#, lifetime_line(valid_lifetime)),
    )
}

#[test]
fn invalid_edit_is_rejected_without_reload_and_dhcp_keeps_serving() {
    const GOOD_POOL: &str = "127.0.0.100 - 127.0.0.200";
    const OUTSIDE_POOL: &str = "10.0.0.100 - 10.0.0.200";
    let port = free_udp_port();
    let kea = KeaServer::start_with_args(
        Service::Dhcp4,
        &lo_config(FIRST_LIFETIME, GOOD_POOL),
        &["-p", &port.to_string()],
    );
    backdate(&kea.config_path);
    let agent = start_agent(&kea.config_path, DEFAULT_AGENT);
    let f = Fixture::settle(kea, agent);
    let pid = f.kea.pid();
    assert!(
        udp_port_bound_by(port, pid),
        "Kea (pid {pid}) should hold 127.0.0.1:{port}/udp before the edit"
    );
    let pools_before = first_subnet_pools(&f.kea);

    // Kea 2.2 closes its DHCP sockets before failing on such a config: it must never see it.
    let invalid = materialize(&f.kea, &lo_config(4100, OUTSIDE_POOL));
    fs::write(&f.kea.config_path, invalid).expect("invalid edit");
    f.wait("a Rejected event", || {
        !f.agent.events("Rejected").is_empty()
    });
    f.expect_no_more_reloads(0);
    let rejected = f.agent.events("Rejected");
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert!(
        rejected[0].contains("does not match the prefix of a subnet"),
        "the Rejected line should carry Kea's text: {}",
        rejected[0]
    );
    assert_eq!(first_subnet_pools(&f.kea), pools_before);
    assert_eq!(valid_lifetime_of(&f), Some(u64::from(FIRST_LIFETIME)));
    assert!(
        udp_port_bound_by(port, pid),
        "Kea (pid {pid}) lost 127.0.0.1:{port}/udp after the invalid edit"
    );

    let fixed = materialize(&f.kea, &lo_config(4100, GOOD_POOL));
    fs::write(&f.kea.config_path, fixed).expect("fix");
    f.expect_live(4100, 1);
    assert!(
        udp_port_bound_by(port, pid),
        "Kea (pid {pid}) should hold 127.0.0.1:{port}/udp after the fix"
    );
}

/// Validation starts as soon as a change is seen, before the settle window ends; a newer
/// change voids that verdict. A good save replaced by a broken one within the window is
/// rejected (Kea never sees it); a broken save replaced by a good one goes live.
#[test]
fn a_verdict_reached_while_settling_counts_only_for_the_files_it_checked() {
    const STARTED: &str = "validating while the change settles";
    let kea = start_kea(&standard_config(FIRST_LIFETIME));
    let agent = start_agent(
        &kea.config_path,
        AgentOptions {
            // Room for a second save after the first one's verdict, before the check.
            settle_ms: 3000,
            log_filter: "kea_sync_agent=debug",
            ..DEFAULT_AGENT
        },
    );
    let f = Fixture::settle(kea, agent);
    let broken = |valid_lifetime: u32| {
        let body = format!(
            r#"{}, "subnet4": [ {{ "id": 1, "subnet": "192.0.2.0/24",
               "pools": [ {{ "pool": "198.51.100.1 - 198.51.100.9" }} ] }} ]"#,
            lifetime_line(valid_lifetime)
        );
        materialize(&f.kea, &dhcp4_config(r#"{ "interfaces": [] }"#, &body))
    };
    let started = || f.agent.log().matches(STARTED).count();

    write_by_rename(&f.kea.config_path, &f.text(4100));
    f.wait("validation of the good save to start", || started() >= 1);
    sleep(Duration::from_millis(500)); // its verdict (valid) is in by now
    write_by_rename(&f.kea.config_path, &broken(4200));
    f.wait("a Rejected event", || {
        !f.agent.events("Rejected").is_empty()
    });
    f.expect_no_more_reloads(0);
    assert_eq!(valid_lifetime_of(&f), Some(u64::from(FIRST_LIFETIME)));
    assert_eq!(
        started(),
        1,
        "the second save of a burst waits for the check"
    );

    write_by_rename(&f.kea.config_path, &broken(4300));
    f.wait("validation of the broken save to start", || started() >= 2);
    sleep(Duration::from_millis(500)); // its verdict (invalid) is in by now
    write_by_rename(&f.kea.config_path, &f.text(4400));
    f.expect_live(4400, 1);
    let rejected = f.agent.events("Rejected");
    assert_eq!(
        rejected.len(),
        1,
        "only the first broken save: {rejected:#?}"
    );
}

/// A central that does config-set + config-write (Stork, Micetro) leaves a file that Kea
/// already runs: the agent finds it in sync and does not reload (a reload restarts HA).
#[test]
fn config_written_by_kea_itself_is_in_sync_without_a_reload() {
    let f = Fixture::start(&standard_config(FIRST_LIFETIME));
    let mut config = f.kea.command(r#"{"command":"config-get"}"#)["arguments"].clone();
    if let Some(top) = config.as_object_mut() {
        top.remove("hash"); // Kea 2.4+ adds it; config-set refuses it
    }
    config["Dhcp4"]["valid-lifetime"] = json!(4100);
    let set = f
        .kea
        .command(&json!({"command": "config-set", "arguments": config}).to_string());
    assert_eq!(set["result"], 0, "config-set: {set}");
    let write = f.kea.command(
        &json!({"command": "config-write", "arguments": {"filename": f.kea.config_path}})
            .to_string(),
    );
    assert_eq!(write["result"], 0, "config-write: {write}");
    f.wait("the agent to look at the file Kea wrote", || {
        f.agent.event_count() >= 2
    });
    f.expect_no_more_reloads(0);
    assert_eq!(valid_lifetime_of(&f), Some(4100));
    let in_sync = f.agent.events("InSync");
    assert_eq!(in_sync.len(), 2, "{}", f.agent.log());
    assert!(
        in_sync[1].contains("in-memory config already is this content"),
        "{}",
        in_sync[1]
    );
}

// ---------------------------------------------------------------------------------------
// Kea's and the agent's lifecycles

#[test]
fn kea_down_at_start_is_retried_quietly_then_found_in_sync() {
    let mut kea = start_kea(&standard_config(FIRST_LIFETIME));
    kea.stop();
    let agent = start_agent(
        &kea.config_path,
        AgentOptions {
            control_socket: Some(&kea.socket_path),
            log_filter: "kea_sync_agent=debug",
            ..DEFAULT_AGENT
        },
    );
    wait_until("an Unreachable event", &kea, &agent, || {
        !agent.events("Unreachable").is_empty()
    });
    // Each attempt logs either the Unreachable event or, at debug, "still unreachable".
    wait_until("three attempts to reach Kea", &kea, &agent, || {
        agent.events("Unreachable").len() + agent.log().matches("still unreachable").count() >= 3
    });
    let unreachable = agent.events("Unreachable");
    assert_eq!(
        unreachable.len(),
        1,
        "one Unreachable line, not one per retry: {unreachable:#?}"
    );
    assert!(
        unreachable[0].contains(&kea.socket_path.display().to_string()),
        "the Unreachable line should name the socket: {}",
        unreachable[0]
    );

    kea.restart();
    wait_until("the agent to find Kea in sync", &kea, &agent, || {
        !agent.events("InSync").is_empty()
    });
    let f = Fixture {
        agent,
        kea,
        base_reloads: 0,
        base_applied: 0,
    };
    f.expect_no_more_reloads(0);

    fs::write(&f.kea.config_path, f.text(4100)).expect("edit");
    f.expect_live(4100, 1);
}

#[test]
fn kea_restart_under_the_agent_causes_no_reload() {
    let kea = start_kea(&standard_config(FIRST_LIFETIME));
    // Re-check every second, so the agent gets to look after the restart.
    let agent = start_agent(
        &kea.config_path,
        AgentOptions {
            check_interval_s: 1,
            ..DEFAULT_AGENT
        },
    );
    let mut f = Fixture::settle(kea, agent);
    let old_pid = f.kea.pid();
    f.kea.restart();
    assert_ne!(f.kea.pid(), old_pid, "Kea should run as a new process");
    sleep(Duration::from_millis(1500));
    f.expect_no_more_reloads(0);

    fs::write(&f.kea.config_path, f.text(4100)).expect("edit after the restart");
    f.expect_live(4100, 1);
}

#[test]
fn a_second_run_on_the_same_state_dir_exits_at_once_naming_the_first() {
    let f = Fixture::start(&standard_config(FIRST_LIFETIME));
    let toml = AgentToml::new()
        .state_dir(f.agent.state_dir())
        .service(TomlTable::service(Service::Dhcp4, &f.kea.config_path));
    let second = Agent::new().start(&toml);
    let Some(status) = second.wait_exit(EXIT_WITHIN) else {
        panic!(
            "a second agent on the same state dir kept running\n{}",
            second.log()
        );
    };
    assert_eq!(status.code(), Some(2), "{}", second.log());
    let log = second.log();
    assert!(
        log.contains(&f.agent.state_dir().display().to_string())
            && log.contains(&format!("pid {}", f.agent.pid())),
        "the refusal names the state dir and the first agent's pid: {log}"
    );
    assert!(f.agent.exited().is_none(), "the first agent keeps running");
    fs::write(&f.kea.config_path, f.text(4100)).expect("edit");
    f.expect_live(4100, 1);
}

#[test]
fn sighup_with_a_bad_agent_config_keeps_the_running_one() {
    let f = Fixture::start(&standard_config(FIRST_LIFETIME));
    let good = fs::read_to_string(f.agent.toml()).expect("read agent.toml");
    let bad = good.replacen("[agent]\n", "[agent]\nno_such_key = 1\n", 1);
    assert_ne!(bad, good);
    fs::write(f.agent.toml(), bad).expect("write bad agent.toml");
    f.agent.signal(SIGHUP);
    let toml = f.agent.toml().display().to_string();
    f.wait("an error naming the agent config", || {
        f.agent
            .log()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains(&toml) && l.contains("no_such_key"))
    });
    assert!(f.agent.exited().is_none(), "the agent must keep running");

    fs::write(&f.kea.config_path, f.text(4100)).expect("edit");
    f.expect_live(4100, 1);
}

#[test]
fn sigterm_during_an_apply_exits_cleanly_leaving_old_or_new_config() {
    let kea = start_kea(&standard_config(FIRST_LIFETIME));
    let mut mid_check = 0;
    // Different delays land the signal before, during and after the check.
    for (round, delay_ms) in [0u64, 20, 40, 60, 80, 100, 150, 250]
        .into_iter()
        .enumerate()
    {
        let agent = start_agent(&kea.config_path, DEFAULT_AGENT);
        wait_until("the agent's first event", &kea, &agent, || {
            agent.event_count() >= 1
        });
        let before = valid_lifetime(&kea);
        let next = 4100 + u32::try_from(round).expect("small round");
        fs::write(&kea.config_path, materialize(&kea, &standard_config(next))).expect("edit");
        sleep(Duration::from_millis(delay_ms));
        agent.signal(SIGTERM);
        let Some(status) = agent.wait_exit(EXIT_WITHIN) else {
            panic!(
                "round {round}: the agent did not exit within {EXIT_WITHIN:?} of SIGTERM\n{}",
                agent.log()
            );
        };
        assert!(
            status.success(),
            "round {round}: exit status {status}\n{}",
            agent.log()
        );
        if agent.log().contains("finishing the check in flight") {
            mid_check += 1;
        }
        let after = valid_lifetime(&kea);
        assert!(
            after == before || after == Some(u64::from(next)),
            "round {round}: valid-lifetime {after:?}, expected {before:?} or {next}"
        );
        let failed = kea.failed_reloads();
        assert!(
            failed.is_empty(),
            "round {round}: failed reloads {failed:#?}\n{}",
            agent.log()
        );
    }
    eprintln!("SIGTERM arrived during a check in {mid_check} of 8 rounds");
}

#[test]
fn fresh_agent_against_kea_running_the_file_does_not_reload() {
    let kea = start_kea(&standard_config(FIRST_LIFETIME));
    // start_agent gives every agent a new, empty state dir.
    let agent = start_agent(&kea.config_path, DEFAULT_AGENT);
    let f = Fixture::settle(kea, agent);
    f.expect_no_more_reloads(0);
    assert_eq!(
        f.kea.reload_count(),
        0,
        "no reload at all since Kea started"
    );
    assert_eq!(valid_lifetime_of(&f), Some(u64::from(FIRST_LIFETIME)));
}
