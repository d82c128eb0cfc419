//! The daemon held in-process, as `run` holds it but with triggers of the test's own:
//! it reloads edits into a real kea-dhcp4 (2.2), holds its state dir, applies a re-read
//! agent config service by service, and stops when told.

mod common;

use common::agent::{AgentToml, TomlTable};
use common::{KeaServer, backdate, tail};
use kea_sync_agent::agent::config::AgentConfig;
use kea_sync_agent::agent::daemon::{Daemon, DaemonIo, Triggers};
use kea_sync_agent::agent::lock::StateDirLock;
use kea_sync_agent::kea::Service;
use kea_sync_agent::shutdown::{self, ShutdownTrigger};
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
/// What the daemon gets to stop once told.
const STOP_WITHIN: Duration = Duration::from_secs(6);

/// A multi-threaded runtime: the test's blocking Kea commands must not stall the daemon.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A Kea (config backdated, so the daemon finds it in sync) per service.
fn start_kea(service: Service, lifetime: u64) -> KeaServer {
    let kea = KeaServer::start(service, json!({"valid-lifetime": lifetime}));
    backdate(&kea.config_path);
    kea
}

fn lifetime(kea: &KeaServer) -> Option<u64> {
    let reply = kea.command(r#"{"command":"config-get"}"#);
    reply["arguments"][kea.service.config_key()]["valid-lifetime"].as_u64()
}

/// Rewrites Kea's config file (pretty JSON from the harness) with another lifetime.
fn edit_lifetime(kea: &KeaServer, from: u64, to: u64) {
    let text = fs::read_to_string(&kea.config_path).expect("read Kea's config");
    let (old, new) = (
        format!("\"valid-lifetime\": {from}"),
        format!("\"valid-lifetime\": {to}"),
    );
    assert!(text.contains(&old), "{old} not in {text}");
    fs::write(&kea.config_path, text.replace(&old, &new)).expect("edit Kea's config");
}

/// How often Kea was asked `command` (its log names every command it receives).
fn received(kea: &KeaServer, command: &str) -> usize {
    let line = format!("COMMAND_RECEIVED Received command '{command}'");
    kea.log().lines().filter(|l| l.contains(&line)).count()
}

/// The daemon on its task, and the test's hands on it.
struct Running {
    stop: ShutdownTrigger,
    reload: UnboundedSender<()>,
    task: JoinHandle<()>,
    toml: PathBuf,
    state_dir: PathBuf,
}

/// Loads `toml`, opens the daemon's IO and runs it on `runtime`.
async fn start(toml: &Path) -> Running {
    let config = AgentConfig::load(toml).expect("agent config");
    let state_dir = config.agent.state_dir.clone();
    let io = DaemonIo::open(&config).expect("the daemon's IO");
    let daemon = Daemon::new(config, Some(toml.to_path_buf()), io).expect("the daemon");
    let (stop, shutdown) = shutdown::channel();
    let (reload, reloads) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(daemon.run(Triggers {
        shutdown,
        reload: reloads,
    }));
    Running {
        stop,
        reload,
        task,
        toml: toml.to_path_buf(),
        state_dir,
    }
}

/// Polls `done` (blocking Kea commands are fine: the runtime has two workers).
async fn wait(what: &str, kea: &KeaServer, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}\n--- Kea log ---\n{}",
            tail(&kea.log(), 30)
        );
        tokio::time::sleep(POLL).await;
    }
}

#[test]
fn the_daemon_runs_in_process_reloads_edits_and_stops_when_told() {
    let kea = start_kea(Service::Dhcp4, 4000);
    let dir = tempfile::tempdir().expect("temp dir");
    let toml = dir.path().join("agent.toml");
    AgentToml::new()
        .service(TomlTable::service(Service::Dhcp4, &kea.config_path))
        .write(&toml);
    runtime().block_on(async {
        let running = start(&toml).await;
        let holder =
            StateDirLock::holder(&running.state_dir).expect("the daemon holds its state dir");
        assert_eq!(holder.pid, Some(std::process::id()));
        assert_eq!(holder.command, "run");
        wait("the start-up look at Kea", &kea, || {
            received(&kea, "status-get") >= 1
        })
        .await;
        let reloads = kea.reload_count();

        edit_lifetime(&kea, 4000, 4100);
        wait("the edit live in Kea", &kea, || {
            lifetime(&kea) == Some(4100)
        })
        .await;
        assert_eq!(kea.reload_count(), reloads + 1, "one edit, one reload");

        running.stop.trigger();
        tokio::time::timeout(STOP_WITHIN, running.task)
            .await
            .expect("the daemon stops when told")
            .expect("the daemon's task did not panic");
        assert_eq!(
            StateDirLock::holder(&running.state_dir),
            None,
            "a stopped daemon leaves its state dir free"
        );
        drop(running.reload);
    });
}

#[test]
fn a_reload_restarts_only_the_service_whose_table_changed() {
    let dhcp4 = start_kea(Service::Dhcp4, 4000);
    let dhcp6 = start_kea(Service::Dhcp6, 4000);
    let dir = tempfile::tempdir().expect("temp dir");
    let toml = dir.path().join("agent.toml");
    let config = |dhcp6_timeout: u64| {
        AgentToml::new()
            .service(TomlTable::service(Service::Dhcp4, &dhcp4.config_path))
            .service(
                TomlTable::service(Service::Dhcp6, &dhcp6.config_path).timeout_s(dhcp6_timeout),
            )
    };
    config(30).write(&toml);
    // The harness asked each Kea for its version too, when it started it.
    let met = (
        received(&dhcp4, "version-get") + 1,
        received(&dhcp6, "version-get") + 1,
    );
    runtime().block_on(async {
        let running = start(&toml).await;
        // Each pipeline meets its Kea once: version-get, then status-get at every look.
        wait("both services met", &dhcp6, || {
            (
                received(&dhcp4, "version-get"),
                received(&dhcp6, "version-get"),
            ) == met
        })
        .await;
        let looks = (
            received(&dhcp4, "status-get"),
            received(&dhcp6, "status-get"),
        );

        config(31).write(&running.toml);
        running.reload.send(()).expect("the daemon listens");
        wait("a look at both after the reload", &dhcp6, || {
            received(&dhcp4, "status-get") > looks.0 && received(&dhcp6, "status-get") > looks.1
        })
        .await;
        assert_eq!(
            received(&dhcp4, "version-get"),
            met.0,
            "dhcp4's table did not change: its pipeline kept its Kea and its state"
        );
        assert_eq!(
            received(&dhcp6, "version-get"),
            met.1 + 1,
            "dhcp6's table changed: a new pipeline met its Kea again"
        );

        // Both still work after the reload.
        edit_lifetime(&dhcp4, 4000, 4100);
        edit_lifetime(&dhcp6, 4000, 4200);
        wait("both edits live", &dhcp6, || {
            lifetime(&dhcp4) == Some(4100) && lifetime(&dhcp6) == Some(4200)
        })
        .await;
        running.stop.trigger();
        tokio::time::timeout(STOP_WITHIN, running.task)
            .await
            .expect("the daemon stops when told")
            .expect("the daemon's task did not panic");
    });
}
