//! Kea 3.0 (the sid root) serving its own HTTPS control socket with basic
//! auth: with only `config_file` in agent.toml the agent trusts the socket's
//! `trust-anchor` and logs in as its first client (`directory` +
//! `password-file`), as Kea reads them; agent.toml's own settings win.

mod common;
mod tls_support;

use common::agent::{Agent, AgentToml, TomlTable};
use common::{KeaServer, free_port, kea_root, root_validator};
use kea_sync_agent::kea::Service;
use std::fs;
use std::path::{Path, PathBuf};
use tls_support::make_certs;

/// Kea's TLS files, the client's secret and the config, in a dir of the
/// root's /tmp that the host sees at the same path (a symlink in /tmp), as a
/// real host has one /etc/kea for Kea and the agent.
struct Shared {
    inside: tempfile::TempDir,
    host_path: PathBuf,
}

impl Shared {
    fn new(root: &Path) -> Shared {
        let inside = tempfile::Builder::new()
            .prefix("kea3-https-")
            .tempdir_in(root.join("tmp"))
            .expect("temp dir in the root");
        let name = inside.path().file_name().expect("name").to_owned();
        let host_path = Path::new("/tmp").join(name);
        std::os::unix::fs::symlink(inside.path(), &host_path).expect("symlink in /tmp");
        Shared { inside, host_path }
    }

    /// Writes `name`; its path as both Kea and the agent see it.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        fs::write(self.inside.path().join(name), text).expect("write");
        self.host_path.join(name)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.host_path);
    }
}

/// Kea 3.0 with an HTTPS socket (first, so the agent picks it) and the unix
/// socket the harness itself talks to.
fn start_kea(root: &Path, shared: &Shared, port: u16, cert_required: bool) -> KeaServer {
    let certs = make_certs("kea3 test CA", &["127.0.0.1"]);
    let ca = shared.write("ca.pem", &certs.ca_pem);
    let cert = shared.write("server.pem", &certs.server_cert_pem);
    let key = shared.write("server-key.pem", &certs.server_key_pem);
    // The whole secret in one file, user:password, as Kea's ARM allows.
    shared.write("agent-secret", "sync-agent:s3cret\n");
    let config = format!(
        r#"{{"Dhcp4": {{
  "interfaces-config": {{"interfaces": []}},
  "control-sockets": [
    {{"socket-type": "https", "socket-address": "127.0.0.1", "socket-port": {port},
      "trust-anchor": "{ca}", "cert-file": "{cert}", "key-file": "{key}", "cert-required": {cert_required},
      "authentication": {{"type": "basic", "realm": "kea", "directory": "{dir}",
        "clients": [{{"password-file": "agent-secret"}}]}}}},
    {{"socket-type": "unix", "socket-name": "@SOCKET@"}}
  ],
  "valid-lifetime": 4000,
  "loggers": [{{"name": "kea-dhcp4", "severity": "INFO",
    "output-options": [{{"output": "@LOG@"}}]}}]
}}}}"#,
        ca = ca.display(),
        cert = cert.display(),
        key = key.display(),
        dir = shared.host_path.display(),
    );
    let kea = KeaServer::start_in(Some(root), Service::Dhcp4, &config, &[]);
    assert!(kea.version().starts_with("3."), "Kea 3 from the sid root");
    kea
}

fn agent_for(root: &Path, kea: &KeaServer, extra: &[String]) -> Agent {
    let mut agent = Agent::new();
    let mut service = TomlTable::service(Service::Dhcp4, &kea.config_path).path(
        "validator",
        &root_validator(root, Service::Dhcp4, agent.dir()),
    );
    for line in extra {
        service = service.line(line);
    }
    agent.write_toml(&AgentToml::new().service(service));
    agent
}

fn text_of(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn zero_config_trusts_and_logs_in_as_kea_says() {
    let root = kea_root();
    let shared = Shared::new(&root);
    let port = free_port();
    let kea = start_kea(&root, &shared, port, false);
    let agent = agent_for(&root, &kea, &[]);

    let check = agent.run("check");
    let said = text_of(&check);
    assert!(check.status.success(), "check:\n{said}");
    assert!(
        said.contains(&format!("https://127.0.0.1:{port}")) && said.contains("Kea 3.0"),
        "{said}"
    );

    // An edit applied over that socket: Kea runs it.
    let edited = fs::read_to_string(&kea.config_path)
        .expect("read")
        .replace("\"valid-lifetime\": 4000", "\"valid-lifetime\": 4300");
    fs::write(&kea.config_path, edited).expect("edit");
    let apply = agent.run("apply");
    assert!(apply.status.success(), "apply:\n{}", text_of(&apply));
    let live = kea.command(r#"{"command":"config-get"}"#);
    assert_eq!(
        live["arguments"]["Dhcp4"]["valid-lifetime"],
        4300,
        "{}",
        kea.log()
    );
    assert_eq!(kea.reload_count(), 1, "{}", kea.log());
}

#[test]
fn agent_toml_wins_over_kea_config_and_errors_say_what_to_set() {
    let root = kea_root();
    let shared = Shared::new(&root);
    let port = free_port();
    let kea = start_kea(&root, &shared, port, false);

    // Given explicitly (URL, CA, user, password file): works as before.
    let password_file = shared.write("explicit-password", "s3cret\n");
    let explicit = agent_for(
        &root,
        &kea,
        &[
            format!("control_url = \"https://127.0.0.1:{port}\""),
            format!(
                "ca_file = \"{}\"",
                shared.host_path.join("ca.pem").display()
            ),
            "user = \"sync-agent\"".to_string(),
            format!("password_file = \"{}\"", password_file.display()),
        ],
    );
    let check = explicit.run("check");
    assert!(check.status.success(), "explicit:\n{}", text_of(&check));

    // agent.toml's CA replaces Kea's trust-anchor: another CA is refused.
    let other = shared.write("other-ca.pem", &make_certs("other CA", &["x"]).ca_pem);
    let wrong_ca = agent_for(&root, &kea, &[format!("ca_file = \"{}\"", other.display())]);
    let said = text_of(&wrong_ca.run("check"));
    assert!(said.contains("UnknownIssuer"), "{said}");

    // agent.toml's user replaces Kea's client: a wrong password is refused by Kea.
    let bad_password = shared.write("bad-password", "nope\n");
    let wrong_user = agent_for(
        &root,
        &kea,
        &[
            "user = \"sync-agent\"".to_string(),
            format!("password_file = \"{}\"", bad_password.display()),
        ],
    );
    let said = text_of(&wrong_user.run("check"));
    assert!(said.contains("401"), "{said}");
}

#[test]
fn a_socket_that_wants_a_client_certificate_is_named() {
    let root = kea_root();
    let shared = Shared::new(&root);
    let kea = start_kea(&root, &shared, free_port(), true);
    let agent = agent_for(&root, &kea, &[]);
    let check = agent.run("check");
    let said = text_of(&check);
    assert!(!check.status.success(), "{said}");
    assert!(
        said.contains("requires a client certificate") && said.contains("client_cert"),
        "{said}"
    );
}

/// The daemon's own plain HTTP socket with basic auth (user and password inline in
/// Kea's config): the running agent, zero-config, carries edits of three kinds over it.
#[test]
fn the_running_agent_applies_edits_over_keas_own_http_socket_with_basic_auth() {
    let root = kea_root();
    let port = free_port();
    let config = format!(
        r#"{{"Dhcp4": {{
  "interfaces-config": {{"interfaces": []}},
  "control-sockets": [
    {{"socket-type": "http", "socket-address": "127.0.0.1", "socket-port": {port},
      "authentication": {{"type": "basic", "realm": "kea",
        "clients": [{{"user": "sync-agent", "password": "s3cret"}}]}}}},
    {{"socket-type": "unix", "socket-name": "@SOCKET@"}}
  ],
  "valid-lifetime": 4000,
  "loggers": [{{"name": "kea-dhcp4", "severity": "INFO",
    "output-options": [{{"output": "@LOG@"}}]}}]
}}}}"#
    );
    let kea = KeaServer::start_in(Some(&root), Service::Dhcp4, &config, &[]);
    common::backdate(&kea.config_path);
    let agent = agent_for(&root, &kea, &[]);
    agent.spawn();
    let lifetime = || {
        kea.command(r#"{"command":"config-get"}"#)["arguments"]["Dhcp4"]["valid-lifetime"].as_u64()
    };
    let context = || {
        format!(
            "{}\n--- Kea ---\n{}",
            agent.log(),
            common::tail(&kea.log(), 20)
        )
    };
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        agent.wait_while_running(what, std::time::Duration::from_secs(20), done, context)
    };
    wait("the agent's first look", &|| agent.event_count() >= 1);
    let text = |lifetime: u64| config.replace("4000", &lifetime.to_string());
    let written = |lifetime: u64| kea.materialize(&text(lifetime));
    // In place, by rename, and half a write then the rest.
    fs::write(&kea.config_path, written(4100)).expect("write in place");
    wait("4100 live", &|| lifetime() == Some(4100));
    let next = kea.dir.join("next.conf");
    fs::write(&next, written(4200)).expect("write aside");
    fs::rename(&next, &kea.config_path).expect("rename over");
    wait("4200 live", &|| lifetime() == Some(4200));
    let whole = written(4300);
    let (head, rest) = whole.split_at(whole.len() / 2);
    fs::write(&kea.config_path, head).expect("half");
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(&kea.config_path, format!("{head}{rest}")).expect("whole");
    wait("4300 live", &|| lifetime() == Some(4300));
    assert_eq!(kea.reload_count(), 3, "{}", kea.log());
    assert!(
        kea.failed_reloads().is_empty(),
        "{:?}",
        kea.failed_reloads()
    );
    // The socket it picked: Kea's HTTP one, listed first.
    let said = text_of(&agent.run("check"));
    assert!(
        said.contains(&format!("http://127.0.0.1:{port}")),
        "the agent uses the HTTP socket\n{said}"
    );
}
