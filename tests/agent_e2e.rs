//! `kea-sync-agent run` end to end against a real kea-dhcp4 (2.2) per test: the
//! write-pattern cases of tests/common/write_patterns (config files edited the ways
//! editors, scripts and deployment tools do) with an agent managing dhcp4 alone, then
//! what is dhcp4's or the agent's own. Assertions are on Kea itself (config-get,
//! successful reloads counted in its log), not on the agent's word.

mod common;

use common::agent::{Agent, AgentToml, TomlTable};
use common::write_patterns::{
    AgentOptions, DEFAULT_AGENT, FIRST, Fixture, Fleet, Template, start_agent, start_agent_with,
    wait_until, write_by_link, write_by_rename,
};
use common::{KeaServer, SIGHUP, SIGTERM, backdate, free_udp_port, udp_port_bound_by};
use kea_sync_agent::kea::Service;
use serde_json::{Value, json};
use std::fs;
use std::thread::sleep;
use std::time::Duration;

/// What the agent gets after SIGTERM to finish the apply in flight and exit.
const EXIT_WITHIN: Duration = Duration::from_secs(5);

/// An agent managing dhcp4 alone.
fn dhcp4() -> Fleet {
    Fleet::alone(Service::Dhcp4)
}

write_pattern_tests!(dhcp4());

// ---------------------------------------------------------------------------------------
// Invalid content

/// The pools of Kea's first in-memory subnet.
fn first_subnet_pools(kea: &KeaServer) -> Value {
    let reply = kea.command(r#"{"command":"config-get"}"#);
    reply["arguments"]["Dhcp4"]["subnet4"][0]["pools"].clone()
}

#[test]
fn invalid_edit_is_rejected_without_reload_and_dhcp_keeps_serving() {
    const GOOD_POOL: &str = "127.0.0.100 - 127.0.0.200";
    const OUTSIDE_POOL: &str = "10.0.0.100 - 10.0.0.200";
    // A real DHCP socket on lo (for `-p PORT`) and one 127.0.0.0/8 subnet.
    let template = Template::new(Service::Dhcp4)
        .interfaces_config(r#"{ "interfaces": [ "lo" ], "dhcp-socket-type": "udp" }"#);
    let lo_body = |valid_lifetime: u32, pool: &str| {
        let subnet = json!([{
            "id": 1,
            "subnet": "127.0.0.0/8",
            "interface": "lo",
            "pools": [{"pool": pool}],
        }]);
        format!(r#"{}, "subnet4": {subnet}"#, template.line(valid_lifetime))
    };
    let port = free_udp_port();
    let kea = KeaServer::start_with_args(
        Service::Dhcp4,
        &template.text(&lo_body(FIRST, GOOD_POOL)),
        &["-p", &port.to_string()],
    );
    backdate(&kea.config_path);
    let agent = start_agent(&[(Service::Dhcp4, &kea.config_path)], DEFAULT_AGENT);
    let f = Fixture::settle(agent, vec![(template.clone(), kea)], Service::Dhcp4);
    let pid = f.kea().pid();
    assert!(
        udp_port_bound_by(port, pid),
        "Kea (pid {pid}) should hold 127.0.0.1:{port}/udp before the edit"
    );
    let pools_before = first_subnet_pools(f.kea());

    // Kea 2.2 closes its DHCP sockets before failing on such a config: it must never see it.
    f.expect_rejected(
        &f.text_with(&lo_body(4100, OUTSIDE_POOL)),
        "does not match the prefix of a subnet",
    );
    assert_eq!(first_subnet_pools(f.kea()), pools_before);
    assert!(
        udp_port_bound_by(port, pid),
        "Kea (pid {pid}) lost 127.0.0.1:{port}/udp after the invalid edit"
    );

    fs::write(f.path(), f.text_with(&lo_body(4100, GOOD_POOL))).expect("fix");
    f.expect_live(4100, 1);
    assert!(
        udp_port_bound_by(port, pid),
        "Kea (pid {pid}) should hold 127.0.0.1:{port}/udp after the fix"
    );
}

/// A writer that closed the file or renamed it into place is done: the agent acts at once,
/// whatever `settle_ms` says. One that pauses with the file open is waited for: nothing is
/// reloaded while it holds the file, and its close ends the wait.
#[test]
fn a_finished_write_ends_the_settle_window_and_an_open_one_waits_it_out() {
    use std::io::Write;
    let f = dhcp4()
        .options(AgentOptions {
            // The longest accepted: had the agent waited it out, nothing below would be
            // live within the fixture's 20 s.
            settle_ms: 60_000,
            ..DEFAULT_AGENT
        })
        .start();

    write_by_rename(f.path(), &f.text(4100));
    f.expect_live(4100, 1);

    // In place, whole content written, file still open (an editor between write and close).
    let mut open = fs::File::create(f.path()).expect("open the config for writing");
    open.write_all(f.text(4200).as_bytes())
        .expect("write the config");
    f.expect_no_more_reloads(1);
    assert_eq!(
        f.value(),
        Some(4100),
        "nothing reloaded while the writer holds the file"
    );
    drop(open);
    f.expect_live(4200, 2);
}

/// Validation starts as soon as a change is seen, before the settle window ends; a newer
/// change voids that verdict. A good save replaced by a broken one within the window is
/// rejected (Kea never sees it); a broken save replaced by a good one goes live. The saves
/// are hard links into place: created whole but not closed under the config's name, the
/// agent waits out `settle_ms` for them.
#[test]
fn a_verdict_reached_while_settling_counts_only_for_the_files_it_checked() {
    const STARTED: &str = "validating while the change settles";
    let f = dhcp4()
        .options(AgentOptions {
            // Room for a second save after the first one's verdict, before the check.
            settle_ms: 3000,
            log_filter: "kea_sync_agent=debug",
            ..DEFAULT_AGENT
        })
        .start();
    // A pool outside its subnet.
    let broken = |valid_lifetime: u32| f.text_with(&f.template().invalid(valid_lifetime).0);
    let started = || f.agent.log().matches(STARTED).count();

    write_by_link(f.path(), &f.text(4100));
    f.wait("validation of the good save to start", || started() >= 1);
    sleep(Duration::from_millis(500)); // its verdict (valid) is in by now
    write_by_link(f.path(), &broken(4200));
    f.wait("a Rejected event", || !f.events("Rejected").is_empty());
    f.expect_no_more_reloads(0); // and valid-lifetime still the first
    assert_eq!(
        started(),
        1,
        "the second save of a burst waits for the check"
    );

    write_by_link(f.path(), &broken(4300));
    f.wait("validation of the broken save to start", || started() >= 2);
    sleep(Duration::from_millis(500)); // its verdict (invalid) is in by now
    write_by_link(f.path(), &f.text(4400));
    f.expect_live(4400, 1);
    let rejected = f.events("Rejected");
    assert_eq!(
        rejected.len(),
        1,
        "only the first broken save: {rejected:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// Kea's and the agent's lifecycles

#[test]
fn kea_down_at_start_is_retried_quietly_then_found_in_sync() {
    let template = Template::new(Service::Dhcp4);
    let mut kea = template.start(&template.standard(FIRST));
    kea.stop();
    let agent = start_agent_with(
        vec![TomlTable::service(Service::Dhcp4, &kea.config_path).control_socket(&kea.socket_path)],
        AgentOptions {
            log_filter: "kea_sync_agent=debug",
            ..DEFAULT_AGENT
        },
    );
    wait_until("an Unreachable event", &[&kea], &agent, || {
        !agent.events("Unreachable").is_empty()
    });
    // Each attempt logs either the Unreachable event or, at debug, "still unreachable".
    wait_until("three attempts to reach Kea", &[&kea], &agent, || {
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
    wait_until("the agent to find Kea in sync", &[&kea], &agent, || {
        !agent.events("InSync").is_empty()
    });
    let f = Fixture::settle(agent, vec![(template, kea)], Service::Dhcp4);
    f.expect_no_more_reloads(0);

    fs::write(f.path(), f.text(4100)).expect("edit");
    f.expect_live(4100, 1);
}

#[test]
fn a_second_run_on_the_same_state_dir_exits_at_once_naming_the_first() {
    let f = dhcp4().start();
    let toml = AgentToml::new()
        .state_dir(f.agent.state_dir())
        .service(TomlTable::service(Service::Dhcp4, f.path()));
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
    fs::write(f.path(), f.text(4100)).expect("edit");
    f.expect_live(4100, 1);
}

#[test]
fn sighup_with_a_bad_agent_config_keeps_the_running_one() {
    let f = dhcp4().start();
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

    fs::write(f.path(), f.text(4100)).expect("edit");
    f.expect_live(4100, 1);
}

#[test]
fn sigterm_during_an_apply_exits_cleanly_leaving_old_or_new_config() {
    let template = Template::new(Service::Dhcp4);
    let kea = template.start(&template.standard(FIRST));
    let mut mid_check = 0;
    // Different delays land the signal before, during and after the check.
    for (round, delay_ms) in [0u64, 20, 40, 60, 80, 100, 150, 250]
        .into_iter()
        .enumerate()
    {
        let agent = start_agent(&[(Service::Dhcp4, &kea.config_path)], DEFAULT_AGENT);
        wait_until("the agent's first event", &[&kea], &agent, || {
            agent.event_count() >= 1
        });
        let before = template.value(&kea);
        let next = 4100 + u32::try_from(round).expect("small round");
        fs::write(&kea.config_path, kea.materialize(&template.standard(next))).expect("edit");
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
        let after = template.value(&kea);
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
