//! The kea-sync-agent binary under test: [`AgentToml`] writes its config, [`Agent`] owns
//! one agent's dir (agent.toml, state/, agent.log) and its `run` process, which can be
//! signalled, stopped, killed and started again on the same state. [`run_agent`] runs
//! one-shot commands (`apply`, `check`, `kea ...`).
//!
//! Like Kea's, an agent's dir is removed on drop unless `KEA_TEST_KEEP=1`.

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use kea_sync_agent::kea::Service;
use tempfile::TempDir;

use super::{SIGTERM, keep_if_asked, new_temp_dir, send_signal, strip_ansi};

/// The kea-sync-agent binary cargo built for these tests.
pub const AGENT_BIN: &str = env!("CARGO_BIN_EXE_kea-sync-agent");
/// What [`Agent::stop`] gives the agent to exit after SIGTERM.
const STOP_WITHIN: Duration = Duration::from_secs(20);
/// What dropping an [`Agent`] gives it after SIGTERM, before SIGKILL.
const DROP_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

/// An agent.toml: `[agent]`, an optional `[upstream]`, `[[service]]` tables, raw extra text.
#[derive(Clone, Debug)]
pub struct AgentToml {
    state_dir: Option<PathBuf>,
    settle_ms: u64,
    check_interval_s: u64,
    upstream: Option<TomlTable>,
    services: Vec<TomlTable>,
    extra: String,
}

impl Default for AgentToml {
    fn default() -> Self {
        AgentToml {
            state_dir: None,
            settle_ms: 50,
            check_interval_s: 60,
            upstream: None,
            services: Vec::new(),
            extra: String::new(),
        }
    }
}

impl AgentToml {
    /// settle_ms 50, check_interval_s 60, no service, state_dir `state` beside the file.
    pub fn new() -> AgentToml {
        AgentToml::default()
    }

    /// `[agent] state_dir`, e.g. another agent's, to run on its state.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// `[agent] settle_ms`.
    pub fn settle_ms(mut self, ms: u64) -> Self {
        self.settle_ms = ms;
        self
    }

    /// `[agent] check_interval_s` (0: never).
    pub fn check_interval_s(mut self, seconds: u64) -> Self {
        self.check_interval_s = seconds;
        self
    }

    /// Adds a `[[service]]` table ([`TomlTable::service`]).
    pub fn service(mut self, table: TomlTable) -> Self {
        assert_eq!(
            table.header, SERVICE,
            "AgentToml::service takes a service table"
        );
        self.services.push(table);
        self
    }

    /// Sets the `[upstream]` table ([`TomlTable::upstream`]).
    pub fn upstream(mut self, table: TomlTable) -> Self {
        assert_eq!(
            table.header, UPSTREAM,
            "AgentToml::upstream takes the upstream table"
        );
        self.upstream = Some(table);
        self
    }

    /// Raw TOML after everything else; start it with a table header.
    pub fn extra(mut self, text: &str) -> Self {
        self.extra.push_str(text);
        self
    }

    /// The state dir of this config written at `path`.
    pub fn state_dir_at(&self, path: &Path) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| path.with_file_name("state"))
    }

    /// The text of this config written at `path`; `[agent]` keys first, in the order
    /// state_dir, settle_ms, check_interval_s, admin_socket (tests point at their lines).
    /// The admin socket is `admin.sock` beside the file: never the host's
    /// /run/kea-sync-agent, where a real agent may live.
    pub fn render(&self, path: &Path) -> String {
        let mut text = format!(
            "[agent]\nstate_dir = {}\nsettle_ms = {}\ncheck_interval_s = {}\nadmin_socket = {}\n",
            toml_string(&self.state_dir_at(path).to_string_lossy()),
            self.settle_ms,
            self.check_interval_s,
            toml_string(&path.with_file_name("admin.sock").to_string_lossy()),
        );
        if let Some(upstream) = &self.upstream {
            upstream.render(&mut text);
        }
        for service in &self.services {
            service.render(&mut text);
        }
        if !self.extra.is_empty() {
            text.push('\n');
            text.push_str(&self.extra);
            if !self.extra.ends_with('\n') {
                text.push('\n');
            }
        }
        text
    }

    /// Writes this config at `path`.
    pub fn write(&self, path: &Path) {
        fs::write(path, self.render(path))
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// A `[[service]]` or `[upstream]` table of an [`AgentToml`], keys in the order set.
#[derive(Clone, Debug)]
pub struct TomlTable {
    header: &'static str,
    lines: Vec<String>,
}

impl TomlTable {
    /// `[[service]]` with `name` and `config_file`; the rest at the agent's defaults.
    pub fn service(service: Service, config_file: &Path) -> TomlTable {
        let table = TomlTable {
            header: SERVICE,
            lines: vec![format!("name = {}", toml_string(service.name()))],
        };
        table.path("config_file", config_file)
    }

    /// `[upstream]` sending events to `url`; the rest at the agent's defaults.
    pub fn upstream(url: &str) -> TomlTable {
        TomlTable {
            header: UPSTREAM,
            lines: vec![format!("url = {}", toml_string(url))],
        }
    }

    /// `control_socket` of a service: reach Kea there rather than where its config says.
    pub fn control_socket(self, socket: &Path) -> Self {
        self.path("control_socket", socket)
    }

    /// `token_file` of the upstream (the agent wants it private: [`super::write_private`]).
    pub fn token_file(self, path: &Path) -> Self {
        self.path("token_file", path)
    }

    /// `ca_file`: the CA to trust instead of the web roots.
    pub fn ca_file(self, path: &Path) -> Self {
        self.path("ca_file", path)
    }

    /// `timeout_s`: of one exchange with Kea (service) or one delivery (upstream).
    pub fn timeout_s(self, seconds: u64) -> Self {
        self.line(&format!("timeout_s = {seconds}"))
    }

    /// `key = "path"`.
    pub fn path(self, key: &str, path: &Path) -> Self {
        self.line(&format!("{key} = {}", toml_string(&path.to_string_lossy())))
    }

    /// A raw line of the table (`key = value`).
    pub fn line(mut self, line: &str) -> Self {
        self.lines.push(line.to_string());
        self
    }

    fn render(&self, text: &mut String) {
        text.push('\n');
        text.push_str(self.header);
        text.push('\n');
        for line in &self.lines {
            text.push_str(line);
            text.push('\n');
        }
    }
}

const SERVICE: &str = "[[service]]";
const UPSTREAM: &str = "[upstream]";

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One agent: its own dir (agent.toml, state/, agent.log) and, while started, its
/// `kea-sync-agent run` process. Dropping it sends SIGTERM, then SIGKILL after 5 s.
pub struct Agent {
    child: RefCell<Option<Child>>,
    dir: PathBuf,
    toml: PathBuf,
    state_dir: PathBuf,
    log_path: PathBuf,
    log_filter: String,
    /// A command the agent runs under (e.g. `setpriv ... --`); empty: none.
    wrapper: Vec<String>,
    tmp: Option<TempDir>,
}

impl Default for Agent {
    fn default() -> Self {
        Agent::new()
    }
}

impl Agent {
    /// A new, empty dir; nothing written or started yet. Logs at `info`.
    pub fn new() -> Agent {
        let tmp = new_temp_dir("kea-sync-agent");
        let dir = tmp.path().to_path_buf();
        Agent {
            child: RefCell::new(None),
            toml: dir.join("agent.toml"),
            state_dir: dir.join("state"),
            log_path: dir.join("agent.log"),
            dir,
            log_filter: "info".to_string(),
            wrapper: Vec::new(),
            tmp: Some(tmp),
        }
    }

    /// KEA_SYNC_AGENT_LOG of every later [`Agent::spawn`].
    pub fn log_filter(mut self, filter: &str) -> Agent {
        self.log_filter = filter.to_string();
        self
    }

    /// Every later [`Agent::spawn`] runs `WRAPPER... kea-sync-agent run ...`; the wrapper
    /// must exec the agent (as `setpriv ... --` does), so [`Agent::pid`] stays the agent's.
    pub fn run_under(mut self, wrapper: &[&str]) -> Agent {
        self.wrapper = wrapper.iter().map(|arg| arg.to_string()).collect();
        self
    }

    /// Writes `toml` and spawns the agent.
    pub fn start(mut self, toml: &AgentToml) -> Agent {
        self.write_toml(toml);
        self.spawn();
        self
    }

    /// Writes `toml` as dir/agent.toml (read at the next spawn, run or SIGHUP).
    pub fn write_toml(&mut self, toml: &AgentToml) {
        toml.write(&self.toml);
        self.state_dir = toml.state_dir_at(&self.toml);
    }

    /// Starts `kea-sync-agent run` on dir/agent.toml (again, after a stop or kill),
    /// stdout and stderr appended to agent.log.
    pub fn spawn(&self) {
        assert!(!self.running(), "the agent is already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log_path.display()));
        let stdout = log.try_clone().expect("clone agent.log handle");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(AGENT_BIN);
                command
            }
            None => Command::new(AGENT_BIN),
        };
        let child = command
            .arg("run")
            .arg("--config")
            .arg(&self.toml)
            .env("NO_COLOR", "1")
            .env("KEA_SYNC_AGENT_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn kea-sync-agent run {:?}: {e}", self.wrapper));
        *self.child.borrow_mut() = Some(child);
    }

    /// Runs a one-shot `kea-sync-agent COMMAND --config agent.toml` to its end.
    pub fn run(&self, command: &str) -> Output {
        run_agent(&[command, "--config", &self.toml.to_string_lossy()])
    }

    /// The agent's own dir, for files a test puts beside agent.toml (a token file).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin socket its agent.toml names (dir/admin.sock).
    pub fn admin_socket(&self) -> PathBuf {
        self.toml.with_file_name("admin.sock")
    }

    /// dir/agent.toml.
    pub fn toml(&self) -> &Path {
        &self.toml
    }

    /// The state dir of the agent.toml written last (dir/state unless it says otherwise).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Pid of the process last spawned; panics when none was.
    pub fn pid(&self) -> u32 {
        self.child
            .borrow()
            .as_ref()
            .map(Child::id)
            .expect("Agent::pid: the agent was never spawned")
    }

    /// Everything every run of the agent wrote, without colour codes.
    pub fn log(&self) -> String {
        strip_ansi(&fs::read_to_string(&self.log_path).unwrap_or_default())
    }

    /// Event lines with `outcome` (Applied, Rejected, InSync, Unchanged, Unreachable).
    pub fn events(&self, outcome: &str) -> Vec<String> {
        let field = format!("outcome={outcome} ");
        self.log()
            .lines()
            .filter(|l| is_event_line(l) && l.contains(&field))
            .map(str::to_string)
            .collect()
    }

    /// Every event line, whatever its outcome.
    pub fn event_count(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| is_event_line(l) && l.contains(" outcome="))
            .count()
    }

    /// Event lines of `service` with `outcome`, when the agent manages several services.
    pub fn service_events(&self, service: Service, outcome: &str) -> Vec<String> {
        let field = format!(" service={service} ");
        self.events(outcome)
            .into_iter()
            .filter(|l| l.contains(&field))
            .collect()
    }

    /// Every event line of `service`, whatever its outcome.
    pub fn service_event_count(&self, service: Service) -> usize {
        let field = format!(" service={service} ");
        self.log()
            .lines()
            .filter(|l| l.contains(" outcome=") && l.contains(&field))
            .count()
    }

    /// Sends `signal` (see [`super::SIGHUP`]); panics when it cannot be sent.
    pub fn signal(&self, signal: i32) {
        assert!(
            send_signal(self.pid(), signal),
            "cannot send signal {signal} to the agent"
        );
    }

    /// SIGTERM, then waits up to 20 s for the exit.
    pub fn stop(&self) -> ExitStatus {
        send_signal(self.pid(), SIGTERM);
        self.wait_exit(STOP_WITHIN)
            .unwrap_or_else(|| panic!("the agent did not exit within {STOP_WITHIN:?} of SIGTERM"))
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&self) {
        if let Some(child) = self.child.borrow_mut().as_mut() {
            // Both are no-ops on a child already reaped, so no other process is hit.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The exit status of the process last spawned, once it has exited.
    pub fn exited(&self) -> Option<ExitStatus> {
        self.child.borrow_mut().as_mut()?.try_wait().ok().flatten()
    }

    /// Polls `done` until it holds; panics with `what`, and `context()`, when `within`
    /// passes or the agent exits first.
    pub fn wait_while_running(
        &self,
        what: &str,
        within: Duration,
        mut done: impl FnMut() -> bool,
        context: impl Fn() -> String,
    ) {
        let deadline = Instant::now() + within;
        while !done() {
            if let Some(status) = self.exited() {
                panic!(
                    "the agent exited ({status}) waiting for {what}\n{}",
                    context()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {within:?} waiting for {what}\n{}",
                    context()
                );
            }
            sleep(POLL);
        }
    }

    /// Waits up to `within` for the exit; None if the agent still runs.
    pub fn wait_exit(&self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            sleep(POLL);
        }
    }

    /// Spawned and not exited.
    pub fn running(&self) -> bool {
        self.child.borrow().is_some() && self.exited().is_none()
    }

    /// Event file names in state_dir/outbox, sorted.
    pub fn outbox(&self) -> Vec<String> {
        event_files(&self.state_dir.join("outbox"))
    }

    /// File names in state_dir/dead (refused events and their replies), sorted.
    pub fn dead(&self) -> Vec<String> {
        event_files(&self.state_dir.join("dead"))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.running() {
            send_signal(self.pid(), SIGTERM);
            if self.wait_exit(DROP_GRACE).is_none() {
                self.kill();
            }
        }
        keep_if_asked(self.tmp.take());
    }
}

/// Whether `line` is an event's own line (`SyncEvent::log`), not one that mentions an
/// event's outcome (such as "event not queued upstream yet ... outcome=Applied").
pub fn is_event_line(line: &str) -> bool {
    line.contains(" kea_sync_agent::event: ")
}

/// Runs `kea-sync-agent ARGS` to its end (NO_COLOR=1), capturing stdout and stderr.
pub fn run_agent(args: &[&str]) -> Output {
    Command::new(AGENT_BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run kea-sync-agent")
}

/// Sorted names of the non-hidden files in `dir` (temp files are hidden).
fn event_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|read| {
            read.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
