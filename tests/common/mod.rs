//! Real-Kea test harness: runs kea-dhcp4 / kea-dhcp6 / kea-dhcp-ddns / kea-ctrl-agent in
//! throwaway directories and talks to them with plain std sockets, so tests need no runtime.
//!
//! Every daemon gets its own temp dir (config, unix socket, pid/lock files, logs), so
//! tests can run in parallel. Set `KEA_TEST_KEEP=1` to keep the dirs for debugging and
//! `KEA_TEST_START_SECS` to wait longer than 10 s (+1 s per MB of config) for a daemon.
//! [`agent`] runs the kea-sync-agent binary itself the same way.
#![allow(dead_code)] // each test file uses its own subset of the harness

pub mod agent;
pub mod disk;
pub mod edit;
pub mod rng;
pub mod write_patterns;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use kea_sync_agent::kea::Service;
use serde_json::{Map, Value, json};
use tempfile::TempDir;

const POLL: Duration = Duration::from_millis(20);
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Large reloads and config-gets take seconds; a hung daemon should still fail the test.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Finds a Kea binary in PATH or the sbin dirs; panics (never skips) when it is missing.
pub fn require_binary(name: &str) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let sbin = ["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from);
    for dir in path_dirs.iter().chain(sbin.iter()) {
        let candidate = dir.join(name);
        let executable = fs::metadata(&candidate)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        if executable {
            return candidate;
        }
    }
    let package = match name {
        "kea-dhcp4" => "kea-dhcp4-server",
        "kea-dhcp6" => "kea-dhcp6-server",
        "kea-dhcp-ddns" => "kea-dhcp-ddns-server",
        "kea-ctrl-agent" => "kea-ctrl-agent",
        _ => "kea-common",
    };
    panic!("{name} not found: run scripts/install-deps (apt-get install {package})");
}

/// `kea-dhcpX -t FILE` run in `cwd` (Kea resolves relative includes there): true
/// when Kea accepts the file, with everything it printed.
pub fn kea_accepts(binary: &Path, file: &Path, cwd: &Path) -> (bool, String) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let output = Command::new(binary)
        .arg("-t")
        .arg(file)
        .current_dir(cwd)
        .env("KEA_LOCKFILE_DIR", scratch.path())
        .env("KEA_PIDFILE_DIR", scratch.path())
        .output()
        .expect("run Kea's validator");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    (output.status.success(), text)
}

/// Log message id of a successful config-reload / SIGHUP (checked against 2.2 logs).
/// D2's DCTL_CONFIG_COMPLETE also marks its start-up and config-set: [`d2_reloads`].
pub fn reload_success_id(service: Service) -> &'static str {
    match service {
        Service::Dhcp4 => "DHCP4_DYNAMIC_RECONFIGURATION_SUCCESS",
        Service::Dhcp6 => "DHCP6_DYNAMIC_RECONFIGURATION_SUCCESS",
        Service::D2 => "DCTL_CONFIG_COMPLETE",
    }
}

/// File name of the service's unix control socket in its dir.
fn socket_file(service: Service) -> &'static str {
    match service {
        Service::Dhcp4 => "kea4.sock",
        Service::Dhcp6 => "kea6.sock",
        Service::D2 => "kea-ddns.sock",
    }
}

/// kea-dhcp-ddns's reloads in its `log`: the successful ones, and the lines of
/// those that failed. D2 (2.2) logs DCTL_CONFIG_COMPLETE for start-up, config-set
/// and reloads alike, and nothing when a config-reload command fails; so a reload
/// is a config-reload command or SIGHUP (DCTL_CFG_FILE_RELOAD_SIGNAL_RECVD) line,
/// and it succeeded when DCTL_CONFIG_COMPLETE follows before the next command.
/// Commands run one at a time, so nothing else comes in between.
pub fn d2_reloads(log: &str) -> (usize, Vec<String>) {
    let complete = format!(" {} ", reload_success_id(Service::D2));
    let (mut succeeded, mut failed) = (0, Vec::new());
    let mut pending: Option<&str> = None;
    for line in log.lines() {
        let starts_reload = line.contains("Received command 'config-reload'")
            || line.contains(" DCTL_CFG_FILE_RELOAD_SIGNAL_RECVD ");
        if starts_reload || line.contains(" COMMAND_RECEIVED ") {
            failed.extend(pending.take().map(str::to_string));
            pending = starts_reload.then_some(line);
        } else if line.contains(&complete) && pending.take().is_some() {
            succeeded += 1;
        } else if line.contains(" DCTL_CFG_FILE_RELOAD_ERROR ") {
            pending = None;
            failed.push(line.to_string());
        }
    }
    (succeeded, failed)
}

/// A running kea-dhcp4, kea-dhcp6 or kea-dhcp-ddns with its own dir; killed on drop.
pub struct KeaServer {
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub socket_path: PathBuf,
    /// Where the default config's logger writes; stdout before loggers are set goes to dir/stdout.log.
    pub log_path: PathBuf,
    pub service: Service,
    /// Extra daemon arguments after `-c FILE`.
    args: Vec<String>,
    /// The debootstrap root Kea runs in (chroot), None: the host's Kea.
    root: Option<PathBuf>,
    daemon: Option<Daemon>,
    tmp: Option<TempDir>,
}

impl KeaServer {
    /// Starts `service` with test defaults shallow-merged under the keys of `dhcp_body`.
    ///
    /// `dhcp_body` is the inside of `{"Dhcp4": ...}`; a body already wrapped that way is
    /// unwrapped. Defaults: no interfaces, unix control socket, non-persistent memfile,
    /// INFO logging to `log_path`; Dhcp6 also gets `data-directory` and an EN server-id
    /// (the default DUID-LLT needs a non-loopback interface, absent in bare netns/CI).
    pub fn start(service: Service, dhcp_body: Value) -> KeaServer {
        let tmp = new_temp_dir(service.daemon_binary());
        let dir = tmp.path().to_path_buf();
        let (socket_path, log_path) = places(None, &dir, service);
        let mut config = Map::new();
        config.insert("interfaces-config".into(), json!({"interfaces": []}));
        config.insert(
            "control-socket".into(),
            json!({"socket-type": "unix", "socket-name": socket_path}),
        );
        config.insert(
            "lease-database".into(),
            json!({"type": "memfile", "persist": false}),
        );
        config.insert(
            "loggers".into(),
            json!([{
                "name": service.daemon_binary(),
                "output_options": [{"output": log_path}],
                "severity": "INFO",
            }]),
        );
        if service == Service::D2 {
            // No interfaces or leases; its NameChangeRequest listener gets a port of its
            // own rather than 53001, where the host's kea-dhcp-ddns may listen.
            config.shift_remove("interfaces-config");
            config.shift_remove("lease-database");
            config.insert("ip-address".into(), json!("127.0.0.1"));
            config.insert("port".into(), json!(free_udp_port()));
        }
        if service == Service::Dhcp6 {
            // 2.6.3+ and 3.x take only their own (/var/lib/kea); it holds just the DUID here.
            config.insert("data-directory".into(), json!(data_dir(None, &dir)));
            config.insert(
                "server-id".into(),
                json!({"type": "EN", "enterprise-id": 2495, "identifier": "6b65612d74657374"}),
            );
        }
        let body = match dhcp_body {
            Value::Object(mut map) if map.len() == 1 && map.contains_key(service.config_key()) => {
                map.remove(service.config_key())
                    .unwrap_or_else(|| Value::Object(Map::new()))
            }
            other => other,
        };
        match body {
            Value::Object(map) => config.extend(map),
            Value::Null => {}
            other => panic!("KeaServer::start: dhcp_body must be a JSON object, got {other}"),
        }
        let text = serde_json::to_string_pretty(&json!({ service.config_key(): config }))
            .expect("serialize Kea config");
        Self::launch(service, tmp, &text, Vec::new())
    }

    /// Starts `service` from raw config text (comments, includes allowed), written as
    /// dir/kea-dhcp4.conf after replacing `@SOCKET@` with `socket_path` and `@DIR@` with `dir`.
    /// Log to `@LOG@` for [`KeaServer::log`] and [`KeaServer::reload_count`] to see it; `@DATA@`
    /// is dhcp6's data-directory (its own dir, or /var/lib/kea on 2.6.3+/3.x).
    pub fn start_with_file(service: Service, config_text: &str) -> KeaServer {
        Self::start_with_args(service, config_text, &[])
    }

    /// Like [`KeaServer::start_with_file`], with extra daemon arguments after `-c FILE`
    /// (e.g. `-p PORT`, so a DHCP socket on lo needs no port 67); kept across restarts.
    /// `@LOG@` is replaced with `log_path`.
    pub fn start_with_args(service: Service, config_text: &str, args: &[&str]) -> KeaServer {
        Self::start_in(None, service, config_text, args)
    }

    /// Like [`KeaServer::start_with_args`], with the Kea of a debootstrap `root`
    /// (`chroot ROOT kea-dhcp4 ...`, see [`kea_root`]) when given. Kea 3.x takes its
    /// unix socket only in /run/kea and its log only in /var/log/kea: there `@SOCKET@`
    /// and `@LOG@` point (as the root sees them), `@DIR@` to the server's dir in the
    /// root's /tmp. The fields hold the host's paths, for the tests and the agent.
    pub fn start_in(
        root: Option<&Path>,
        service: Service,
        config_text: &str,
        args: &[&str],
    ) -> KeaServer {
        let tmp = match root {
            Some(root) => new_temp_dir_in(&root.join("tmp"), service.daemon_binary()),
            None => new_temp_dir(service.daemon_binary()),
        };
        let dir = tmp.path().to_path_buf();
        let (socket_path, log_path) = places(root, &dir, service);
        let text = fill_places(config_text, root, &socket_path, &dir, &log_path);
        let args = args.iter().map(|a| a.to_string()).collect();
        Self::begin(service, tmp, &text, args, root, socket_path, log_path)
    }

    fn launch(service: Service, tmp: TempDir, config_text: &str, args: Vec<String>) -> KeaServer {
        let dir = tmp.path().to_path_buf();
        let (socket_path, log_path) = places(None, &dir, service);
        Self::begin(service, tmp, config_text, args, None, socket_path, log_path)
    }

    /// Writes the config file into the server's dir and starts the daemon.
    fn begin(
        service: Service,
        tmp: TempDir,
        config_text: &str,
        args: Vec<String>,
        root: Option<&Path>,
        socket_path: PathBuf,
        log_path: PathBuf,
    ) -> KeaServer {
        let dir = tmp.path().to_path_buf();
        let config_path = dir.join(format!("{}.conf", service.daemon_binary()));
        fs::write(&config_path, config_text)
            .unwrap_or_else(|e| panic!("write {}: {e}", config_path.display()));
        let mut server = KeaServer {
            socket_path,
            log_path,
            config_path,
            dir,
            service,
            args,
            root: root.map(Path::to_path_buf),
            daemon: None,
            tmp: Some(tmp),
        };
        server.spawn_and_wait();
        server
    }

    /// The command that starts this server's daemon; its log's times are UTC
    /// ([`log_time`]).
    fn daemon_command(&self) -> Command {
        let binary = self.service.daemon_binary();
        let mut command = match &self.root {
            Some(root) => {
                let dir = in_root(Some(root), &self.dir);
                let mut command = Command::new("chroot");
                command
                    .arg(root)
                    .arg("env")
                    .arg("TZ=UTC")
                    .arg(format!("KEA_PIDFILE_DIR={}", dir.display()))
                    .arg(format!("KEA_LOCKFILE_DIR={}", dir.display()))
                    .arg(binary)
                    .arg("-c")
                    .arg(in_root(Some(root), &self.config_path));
                command
            }
            None => {
                let mut command = Command::new(require_binary(binary));
                command.env("TZ", "UTC").arg("-c").arg(&self.config_path);
                command
            }
        };
        command.args(&self.args);
        command
    }

    /// Kea's version (version-get's text).
    pub fn version(&self) -> String {
        let reply = self.command(r#"{"command":"version-get"}"#);
        reply["text"].as_str().unwrap_or_default().to_string()
    }

    fn spawn_and_wait(&mut self) {
        // A SIGKILLed daemon leaves its socket file behind; never let it fake readiness.
        let _ = fs::remove_file(&self.socket_path);
        let command = self.daemon_command();
        // Store the daemon before waiting so it is killed if the wait panics.
        self.daemon = Some(Daemon::spawn(command, &self.dir));
        let timeout = start_timeout(&self.config_path);
        let deadline = Instant::now() + timeout;
        loop {
            let answered = send_unix(&self.socket_path, r#"{"command":"version-get"}"#)
                .ok()
                .and_then(|reply| serde_json::from_slice::<Value>(&reply).ok())
                .is_some_and(|reply| reply["result"] == 0);
            if answered {
                return;
            }
            if let Some(status) = self.daemon.as_mut().and_then(Daemon::exited) {
                panic!(
                    "{} exited during startup ({status})\n{}",
                    self.service.daemon_binary(),
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not answer version-get on {} within {:?}\n{}",
                    self.service.daemon_binary(),
                    self.socket_path.display(),
                    timeout,
                    self.log_tail()
                );
            }
            sleep(POLL);
        }
    }

    /// Sends one raw command over the unix control socket and parses the reply.
    pub fn command(&self, json: &str) -> Value {
        let reply = self.command_bytes(json);
        serde_json::from_slice(&reply).unwrap_or_else(|e| {
            let head = String::from_utf8_lossy(&reply[..reply.len().min(500)]).into_owned();
            panic!("unparsable reply ({} bytes, {e}): {head}", reply.len())
        })
    }

    /// `text` with `@SOCKET@`, `@DIR@` and `@LOG@` filled in as [`KeaServer::start_in`]
    /// does for this server: a config text as its file holds it, to write over that file.
    pub fn materialize(&self, text: &str) -> String {
        let root = self.root.as_deref();
        fill_places(text, root, &self.socket_path, &self.dir, &self.log_path)
    }

    /// Sends one raw command and returns the reply bytes exactly as Kea wrote them.
    pub fn command_bytes(&self, json: &str) -> Vec<u8> {
        send_unix(&self.socket_path, json)
            .unwrap_or_else(|e| panic!("command on {}: {e}", self.socket_path.display()))
    }

    /// Successful reconfigurations (config-reload or SIGHUP) seen in the log, counted by
    /// DHCP4_/DHCP6_DYNAMIC_RECONFIGURATION_SUCCESS ([`d2_reloads`] for D2). Startup and
    /// config-set are not counted.
    pub fn reload_count(&self) -> usize {
        if self.service == Service::D2 {
            return d2_reloads(&self.log()).0;
        }
        let id = reload_success_id(self.service);
        self.log().lines().filter(|l| l.contains(id)).count()
    }

    /// Lines of the log that report a failed (re)configuration (DHCP4_CONFIG_LOAD_FAIL,
    /// ..._RECONFIGURATION_FAIL; for D2 see [`d2_reloads`]).
    pub fn failed_reloads(&self) -> Vec<String> {
        if self.service == Service::D2 {
            return d2_reloads(&self.log()).1;
        }
        let load_fail = format!(
            "{}_CONFIG_LOAD_FAIL",
            self.service.config_key().to_uppercase()
        );
        self.log()
            .lines()
            .filter(|l| l.contains(&load_fail) || l.contains("RECONFIGURATION_FAIL"))
            .map(str::to_string)
            .collect()
    }

    /// dir/stdout.log (messages before loggers are configured) followed by `log_path`.
    pub fn log(&self) -> String {
        let stdout = fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default();
        let log = fs::read_to_string(&self.log_path).unwrap_or_default();
        stdout + &log
    }

    /// Pid of the running daemon; panics when it was stopped.
    pub fn pid(&self) -> u32 {
        self.daemon
            .as_ref()
            .map(Daemon::pid)
            .expect("KeaServer::pid: daemon is stopped")
    }

    /// SIGTERM, then SIGKILL after 2 s; keeps the dir and config.
    pub fn stop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.terminate();
        }
    }

    /// Stops and starts the daemon again with the same dir and config file.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn_and_wait();
    }

    fn log_tail(&self) -> String {
        tail(&self.log(), 40)
    }
}

impl Drop for KeaServer {
    fn drop(&mut self) {
        self.stop();
        // Kea's own dirs (/run/kea, /var/log/kea) hold the socket and log of a
        // Kea that takes only those, outside the server's dir.
        if !std::env::var("KEA_TEST_KEEP").is_ok_and(|v| v == "1") {
            for path in [&self.log_path, &self.socket_path] {
                if !path.starts_with(&self.dir) {
                    let _ = fs::remove_file(path);
                }
            }
        }
        keep_if_asked(self.tmp.take());
    }
}

/// A running kea-ctrl-agent in front of one or two [`KeaServer`]s; killed on drop.
pub struct CtrlAgent {
    pub url: String,
    pub port: u16,
    /// Empty without authentication.
    pub user: String,
    /// 0600 file holding the password (no newline); only written with authentication.
    pub password_file: PathBuf,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    password: Option<String>,
    daemon: Option<Daemon>,
    tmp: Option<TempDir>,
}

impl CtrlAgent {
    /// Starts kea-ctrl-agent on a free 127.0.0.1 port, with basic auth when `auth` is given.
    pub fn start(
        dhcp4: &KeaServer,
        dhcp6: Option<&KeaServer>,
        auth: Option<(&str, &str)>,
    ) -> CtrlAgent {
        let tmp = new_temp_dir("kea-ctrl-agent");
        let dir = tmp.path().to_path_buf();
        let password_file = dir.join("password");
        let mut agent = CtrlAgent {
            url: String::new(),
            port: 0,
            user: auth.map(|(user, _)| user.to_string()).unwrap_or_default(),
            password_file,
            config_path: dir.join("kea-ctrl-agent.conf"),
            log_path: log_place(None, &dir, "ca.log"),
            dir,
            password: auth.map(|(_, password)| password.to_string()),
            daemon: None,
            tmp: Some(tmp),
        };
        if let Some(password) = &agent.password {
            write_private(&agent.password_file, password);
        }
        let mut sockets = Map::new();
        for server in std::iter::once(dhcp4).chain(dhcp6) {
            sockets.insert(
                server.service.name().into(),
                json!({"socket-type": "unix", "socket-name": server.socket_path}),
            );
        }
        // The free port is found by binding and dropping, so another test can grab it in
        // between: retry with a new port when the agent dies at startup.
        for attempt in 1..=3 {
            agent.port = free_port();
            agent.url = format!("http://127.0.0.1:{}/", agent.port);
            let mut config = json!({
                "http-host": "127.0.0.1",
                "http-port": agent.port,
                "control-sockets": sockets,
                "loggers": [{
                    "name": "kea-ctrl-agent",
                    "output_options": [{"output": agent.log_path}],
                    "severity": "INFO",
                }],
            });
            if agent.password.is_some() {
                config["authentication"] = json!({
                    "type": "basic",
                    "realm": "kea",
                    "clients": [{"user": agent.user, "password-file": agent.password_file}],
                });
            }
            let text = serde_json::to_string_pretty(&json!({ "Control-agent": config }))
                .expect("serialize agent config");
            fs::write(&agent.config_path, text).expect("write agent config");
            if agent.spawn_and_wait(attempt == 3) {
                return agent;
            }
        }
        unreachable!("spawn_and_wait panics on the last attempt")
    }

    /// Returns false when the agent exited early and `last_try` is false.
    fn spawn_and_wait(&mut self, last_try: bool) -> bool {
        let mut command = Command::new(require_binary("kea-ctrl-agent"));
        command.arg("-c").arg(&self.config_path);
        self.daemon = Some(Daemon::spawn(command, &self.dir));
        let timeout = start_timeout(&self.config_path);
        let deadline = Instant::now() + timeout;
        let credentials = self.credentials();
        let credentials = credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
        loop {
            let answered = post(self.port, r#"{"command":"version-get"}"#, credentials)
                .ok()
                .is_some_and(|(status, body)| status == 200 && first_result(&body) == Some(0));
            if answered {
                return true;
            }
            if let Some(status) = self.daemon.as_mut().and_then(Daemon::exited) {
                self.daemon = None;
                if !last_try {
                    return false;
                }
                panic!(
                    "kea-ctrl-agent exited during startup ({status})\n{}",
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "kea-ctrl-agent did not answer on {} within {:?}\n{}",
                    self.url,
                    timeout,
                    self.log_tail()
                );
            }
            sleep(POLL);
        }
    }

    /// POSTs `body` to the agent; returns the HTTP status and the parsed JSON body.
    pub fn post(&self, body: &str, credentials: Option<(&str, &str)>) -> (u16, Value) {
        let (status, reply) =
            post(self.port, body, credentials).unwrap_or_else(|e| panic!("POST {}: {e}", self.url));
        let value = serde_json::from_str(&reply).unwrap_or_else(|e| {
            panic!(
                "unparsable reply from {} ({e}): {}",
                self.url,
                tail(&reply, 5)
            )
        });
        (status, value)
    }

    /// POSTs a command with the agent's own credentials (if any); returns the JSON reply.
    pub fn command(&self, json: &str) -> Value {
        let credentials = self.credentials();
        self.post(
            json,
            credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
        )
        .1
    }

    /// Pid of the agent process.
    pub fn pid(&self) -> u32 {
        self.daemon
            .as_ref()
            .map(Daemon::pid)
            .expect("CtrlAgent::pid: agent is stopped")
    }

    /// ca.log plus the agent's stdout/stderr.
    pub fn log(&self) -> String {
        let stdout = fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default();
        let log = fs::read_to_string(&self.log_path).unwrap_or_default();
        stdout + &log
    }

    fn credentials(&self) -> Option<(String, String)> {
        self.password.clone().map(|p| (self.user.clone(), p))
    }

    fn log_tail(&self) -> String {
        tail(&self.log(), 40)
    }
}

impl Drop for CtrlAgent {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.terminate();
        }
        if !self.log_path.starts_with(&self.dir)
            && !std::env::var("KEA_TEST_KEEP").is_ok_and(|v| v == "1")
        {
            let _ = fs::remove_file(&self.log_path);
        }
        keep_if_asked(self.tmp.take());
    }
}

/// A Dhcp4 body with `subnets` /24 subnets (10.x.y.0/24, id 1..) each holding a pool, a
/// routers option and `reservations_per_subnet` reservations with unique hw/ip addresses.
pub fn large_dhcp4_body(subnets: usize, reservations_per_subnet: usize) -> Value {
    assert!(
        subnets <= 65_536,
        "10.x.y.0/24 prefixes allow 65536 subnets"
    );
    assert!(
        reservations_per_subnet <= 253,
        "a /24 holds 253 reservations (.1-.253)"
    );
    let mut host = 0u32;
    let subnet4: Vec<Value> = (0..subnets)
        .map(|i| {
            let prefix = format!("10.{}.{}", i / 256, i % 256);
            let reservations: Vec<Value> = (0..reservations_per_subnet)
                .map(|j| {
                    host += 1;
                    let [a, b, c, d] = host.to_be_bytes();
                    json!({
                        "hw-address": format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}"),
                        "ip-address": format!("{prefix}.{}", j + 1),
                        "hostname": format!("host-{host}"),
                    })
                })
                .collect();
            json!({
                "id": i + 1,
                "subnet": format!("{prefix}.0/24"),
                "pools": [{"pool": format!("{prefix}.100 - {prefix}.250")}],
                "option-data": [{"name": "routers", "data": format!("{prefix}.254")}],
                "reservations": reservations,
            })
        })
        .collect();
    json!({
        "valid-lifetime": 4000,
        "reservations-global": false,
        "reservations-in-subnet": true,
        "subnet4": subnet4,
    })
}

/// Owns a spawned Kea process; `terminate` is SIGTERM, then SIGKILL after [`STOP_GRACE`].
struct Daemon {
    child: Child,
}

impl Daemon {
    fn spawn(mut command: Command, dir: &Path) -> Daemon {
        let stdout_path = dir.join("stdout.log");
        let stdout = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stdout_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", stdout_path.display()));
        let stderr = stdout.try_clone().expect("clone stdout.log handle");
        command
            .current_dir(dir)
            .env("KEA_PIDFILE_DIR", dir)
            .env("KEA_LOCKFILE_DIR", dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        Daemon { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn terminate(&mut self) {
        if self.exited().is_some() {
            return;
        }
        // Our own child, not reaped yet: the pid is still its.
        send_signal(self.child.id(), SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            sleep(POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Whether `ss` shows `pid` holding UDP port `port` on 127.0.0.1.
pub fn udp_port_bound_by(port: u16, pid: u32) -> bool {
    let out = Command::new("ss")
        .arg("-ulpn")
        .output()
        .expect("run ss (iproute2)");
    let local = format!("127.0.0.1:{port}");
    let owner = format!("pid={pid},");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|line| line.split_whitespace().any(|field| field == local) && line.contains(&owner))
}

/// A UDP port free on 127.0.0.1 now (for Kea's `-p PORT`).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .map(|addr| addr.port())
        .expect("bind 127.0.0.1:0 (udp)")
}

/// Where a server in `dir` gets its unix control socket and its log: in `dir`,
/// but for a Kea that takes them only in its own dirs (2.6.3+ and 3.x: unix
/// sockets under /run/kea, logs under /var/log/kea) there, named after `dir`.
/// With `root` (a Kea run by chroot) below the root, as the host sees them.
fn places(root: Option<&Path>, dir: &Path, service: Service) -> (PathBuf, PathBuf) {
    match own_dirs_base(root) {
        Some(base) => (
            base.join(format!("run/kea/{}.sock", dir_name(dir))),
            log_place(root, dir, "kea.log"),
        ),
        None => (dir.join(socket_file(service)), dir.join("kea.log")),
    }
}

/// `text` with the harness placeholders filled in as Kea sees the paths:
/// `@SOCKET@`, `@DIR@`, `@LOG@`, and `@DATA@` (dhcp6's data-directory).
fn fill_places(text: &str, root: Option<&Path>, socket: &Path, dir: &Path, log: &Path) -> String {
    let seen = |path: &Path| in_root(root, path).to_string_lossy().into_owned();
    text.replace("@SOCKET@", &seen(socket))
        .replace("@DIR@", &seen(dir))
        .replace("@LOG@", &seen(log))
        .replace("@DATA@", &data_dir(root, dir).to_string_lossy())
}

/// dhcp6's data-directory (it keeps only its DUID there in tests), as Kea sees
/// it: `dir`, or the one 2.6.3+/3.x take, /var/lib/kea.
fn data_dir(root: Option<&Path>, dir: &Path) -> PathBuf {
    match own_dirs_base(root) {
        Some(_) => PathBuf::from("/var/lib/kea"),
        None => dir.to_path_buf(),
    }
}

/// Where a daemon in `dir` logs: `dir/file`, or below the Kea's own log dir.
fn log_place(root: Option<&Path>, dir: &Path, file: &str) -> PathBuf {
    match own_dirs_base(root) {
        Some(base) => base.join(format!("var/log/kea/{}-{file}", dir_name(dir))),
        None => dir.join(file),
    }
}

/// The `/` below which Kea's own dirs are, when the Kea run takes only those.
fn own_dirs_base(root: Option<&Path>) -> Option<PathBuf> {
    match root {
        Some(root) => Some(root.to_path_buf()),
        None => kea_takes_only_its_dirs().then(|| PathBuf::from("/")),
    }
}

fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The version of the Kea in PATH (`kea-dhcp4 -v`), e.g. "2.6.3": the host's,
/// or the root's when the tests run inside a root (scripts/kea-matrix).
pub fn kea_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let binary = require_binary("kea-dhcp4");
        let output = Command::new(&binary)
            .arg("-v")
            .output()
            .unwrap_or_else(|e| panic!("{} -v: {e}", binary.display()));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    })
}

/// [`kea_version`] as numbers, e.g. [2, 6, 3], read as the agent reads it.
pub fn kea_release() -> [u32; 3] {
    let version = kea_sync_agent::kea::KeaVersion::parse(kea_version()).unwrap_or_else(|| {
        panic!(
            "cannot read Kea's version from kea-dhcp4 -v: {:?}",
            kea_version()
        )
    });
    [version.major, version.minor, version.patch]
}

/// Whether the Kea in PATH takes unix sockets, logs and data only in its own
/// dirs: 2.4.2+, 2.6.3+ and 2.7+ (the path restrictions of May 2025).
pub fn kea_takes_only_its_dirs() -> bool {
    let [major, minor, patch] = kea_release();
    (major, minor) >= (2, 7)
        || (major, minor) == (2, 6) && patch >= 3
        || (major, minor) == (2, 4) && patch >= 2
}

/// A validator for the agent that runs `kea-dhcp4 -t|-T FILE` inside `root`, written
/// into `dir`: the agent sees the root's files by their host paths.
pub fn root_validator(root: &Path, service: Service, dir: &Path) -> PathBuf {
    let script = dir.join(format!("{}-in-root", service.daemon_binary()));
    let root_text = root.display().to_string();
    let text = format!(
        "#!/bin/sh\n# {binary} $1 FILE, run inside {root_text}\nexec chroot '{root_text}' env \
         KEA_LOCKFILE_DIR=/tmp KEA_PIDFILE_DIR=/tmp {binary} \"$1\" \"${{2#{root_text}}}\"\n",
        binary = service.daemon_binary()
    );
    fs::write(&script, text).expect("write the validator script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod the script");
    script
}

/// `path` (a host path below `root`) as the root sees it; itself without a root.
pub fn in_root(root: Option<&Path>, path: &Path) -> PathBuf {
    match root.and_then(|root| path.strip_prefix(root).ok()) {
        Some(inside) => Path::new("/").join(inside),
        None => path.to_path_buf(),
    }
}

/// The debootstrap root with Debian sid's Kea 3.0 that scripts/kea-roots makes;
/// panics (never skips) when it is missing.
pub fn kea_root() -> PathBuf {
    let cache = std::env::var_os("KEA_SYNC_AGENT_CI_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/kea-sync-agent-ci"));
    let root = cache.join("roots/sid-kea-v3");
    assert!(
        root.join("usr/sbin/kea-dhcp4").is_file(),
        "no Kea 3.0 root at {}: run scripts/kea-roots sid (as root; debootstrap, about a minute)",
        root.display()
    );
    root
}

/// A temp dir in `base` (the root's /tmp).
fn new_temp_dir_in(base: &Path, prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .tempdir_in(base)
        .unwrap_or_else(|e| panic!("create temp dir in {}: {e}", base.display()))
}

/// Unix socket paths are limited to 108 bytes, so fall back to /tmp for long TMPDIRs.
fn new_temp_dir(prefix: &str) -> TempDir {
    let mut base = std::env::temp_dir();
    if base.as_os_str().len() > 60 {
        base = PathBuf::from("/tmp");
    }
    tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .tempdir_in(&base)
        .unwrap_or_else(|e| panic!("create temp dir in {}: {e}", base.display()))
}

fn keep_if_asked(tmp: Option<TempDir>) {
    if let Some(tmp) = tmp
        && std::env::var("KEA_TEST_KEEP").is_ok_and(|v| v == "1")
    {
        eprintln!("KEA_TEST_KEEP: kept {}", tmp.keep().display());
    }
}

/// 10 s (or `KEA_TEST_START_SECS`) plus 1 s per MB of config: a 26 MB config takes
/// about 12 s to load on 2.2 because it logs a line per subnet.
fn start_timeout(config_path: &Path) -> Duration {
    let base = std::env::var("KEA_TEST_START_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let megabytes = fs::metadata(config_path).map_or(0, |m| m.len() / 1_000_000);
    Duration::from_secs(base + megabytes)
}

/// One command per connection; Kea closes the connection after its reply.
pub fn send_unix(socket: &Path, json: &str) -> std::io::Result<Vec<u8>> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(json.as_bytes())?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    Ok(reply)
}

/// A 127.0.0.1 TCP port nothing listens on right now (another test may take it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind 127.0.0.1:0 to find a free port")
}

/// Raw HTTP/1.1 POST to 127.0.0.1:port; returns the status and the body text.
fn post(
    port: u16,
    body: &str,
    credentials: Option<(&str, &str)>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    let auth = credentials
        .map(|(user, password)| {
            format!(
                "Authorization: Basic {}\r\n",
                basic_auth_token(user, password)
            )
        })
        .unwrap_or_default();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n{auth}\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        // Stop at Content-Length too, in case the agent keeps the connection open.
        if let Some((head_len, Some(len))) = parse_head(&raw)
            && raw.len() >= head_len + len
        {
            break;
        }
    }
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let (head_len, _) = parse_head(&raw).ok_or_else(|| invalid("no HTTP header in reply"))?;
    let head = String::from_utf8_lossy(&raw[..head_len]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("no HTTP status in reply"))?;
    Ok((
        status,
        String::from_utf8_lossy(&raw[head_len..]).into_owned(),
    ))
}

/// Length of the header block including the blank line, and Content-Length if present.
fn parse_head(raw: &[u8]) -> Option<(usize, Option<usize>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..end]);
    let len = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())
            .flatten()
    });
    Some((end, len))
}

/// `result` of a reply, unwrapping the agent's one-element-per-service list.
fn first_result(body: &str) -> Option<i64> {
    let value: Value = serde_json::from_str(body).ok()?;
    let reply = match &value {
        Value::Array(items) => items.first()?,
        other => other,
    };
    reply["result"].as_i64()
}

/// Value of an `Authorization: Basic` header for `user:password` (base64, RFC 4648).
pub fn basic_auth_token(user: &str, password: &str) -> String {
    base64(format!("{user}:{password}").as_bytes())
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The last `lines` lines of `text`, for failure messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Removes `ESC [ ... letter` sequences, in case a program colours its log anyway.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Sets a file's mtime an hour back (without writing to it), so a daemon's start-up load
/// is clearly newer than the content. Only call while no agent watches the file.
pub fn backdate(path: &Path) {
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    fs::File::open(path)
        .and_then(|file| file.set_modified(hour_ago))
        .unwrap_or_else(|e| panic!("backdate {}: {e}", path.display()));
}

/// Whether `value` is a SHA-256 digest in hex (64 hex digits), as events carry them.
pub fn is_sha256_hex(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Writes a secret (password, token) readable by its owner only (0600).
pub fn write_private(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("chmod 600 {}: {e}", path.display()));
}

/// A current-thread tokio runtime with IO and timers, for driving the crate's async API.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Asks the agent to re-read its config (Linux signal numbers, for [`send_signal`]).
pub const SIGHUP: i32 = 1;
/// Cannot be caught: the process gets no chance to finish anything.
pub const SIGKILL: i32 = 9;
/// Asks for a clean exit.
pub const SIGTERM: i32 = 15;
/// Lets a stopped process run again.
pub const SIGCONT: i32 = 18;
/// Cannot be caught: the process stops (hangs) until SIGCONT.
pub const SIGSTOP: i32 = 19;

/// Sends `signal` to process `pid` with kill(2); false when it failed (no such process).
pub fn send_signal(pid: u32, signal: i32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: plain kill(2); the callers signal processes they spawned and still own.
    unsafe { kill(pid, signal) == 0 }
}

/// When a Kea log line (`2026-12-02 07:00:43.356 ERROR ...`, UTC: [`KeaServer`] starts Kea
/// with TZ=UTC) was written.
pub fn log_time(line: &str) -> Option<SystemTime> {
    let stamp = line.get(..23)?;
    let number = |range: std::ops::Range<usize>| stamp.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second, milli) = (
        number(11..13)?,
        number(14..16)?,
        number(17..19)?,
        number(20..23)?,
    );
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let millis = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + milli;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).ok()?))
}
