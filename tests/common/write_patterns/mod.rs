//! The write-pattern cases ([`cases`]): a Kea config file edited the ways editors,
//! scripts and deployment tools do, asserted on Kea itself (config-get, successful
//! reloads counted in its log) and on the agent's events, not on the agent's word.
//!
//! A [`Fleet`] says which Kea daemons one agent manages and which of them a case edits;
//! [`crate::write_pattern_tests!`] makes a test of every case for a fleet, so dhcp4,
//! dhcp6 and d2 run the same cases. A [`Fixture`] is such a fleet running, settled,
//! and counting: every check also asserts that the daemons not edited did not reload.

pub mod cases;

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use super::agent::{Agent, AgentToml, TomlTable};
use super::{KeaServer, backdate, free_udp_port, tail};
use kea_sync_agent::kea::Service;

/// How long anything expected may take (slow, shared machines).
pub const WAIT: Duration = Duration::from_secs(20);
/// Time given to the agent to do something it should not, before counting.
pub const QUIET: Duration = Duration::from_millis(700);
/// The value every case starts from.
pub const FIRST: u32 = 4000;

// ---------------------------------------------------------------------------------------
// Kea config texts

/// A service's config file as the cases write it, in Kea's dialect (comments) with the
/// harness's `@SOCKET@`/`@DIR@`/`@LOG@`: a fixed part, then a body that holds the one
/// value the cases change ([`Template::key`]).
#[derive(Clone, Debug)]
pub struct Template {
    pub service: Service,
    /// `interfaces-config` of a DHCP server.
    interfaces_config: String,
    /// D2's NameChangeRequest port: not 53001, where the host's D2 may listen.
    d2_port: u16,
}

impl Template {
    /// No interfaces; D2 on a free port of its own.
    pub fn new(service: Service) -> Template {
        Template {
            service,
            interfaces_config: r#"{ "interfaces": [] }"#.to_string(),
            d2_port: if service == Service::D2 {
                free_udp_port()
            } else {
                0
            },
        }
    }

    /// Another `interfaces-config` (a DHCP server's), as JSON text.
    pub fn interfaces_config(self, text: &str) -> Template {
        Template {
            interfaces_config: text.to_string(),
            ..self
        }
    }

    /// The member the cases change: `valid-lifetime` (DHCP) or `dns-server-timeout` (D2,
    /// in ms), both plain numbers Kea shows unchanged in config-get.
    pub fn key(&self) -> &'static str {
        match self.service {
            Service::Dhcp4 | Service::Dhcp6 => "valid-lifetime",
            Service::D2 => "dns-server-timeout",
        }
    }

    /// `"key": value`, the body of the standard config.
    pub fn line(&self, value: u32) -> String {
        format!(r#""{}": {value}"#, self.key())
    }

    /// The config text with `body` after the fixed part, inside the service's map.
    pub fn text(&self, body: &str) -> String {
        let fixed = match self.service {
            Service::Dhcp4 => format!(
                r#""interfaces-config": {},
    "lease-database": {{ "type": "memfile", "persist": false }},"#,
                self.interfaces_config
            ),
            // The default DUID-LLT needs a non-loopback interface, absent in bare netns/CI.
            Service::Dhcp6 => format!(
                r#""interfaces-config": {},
    "lease-database": {{ "type": "memfile", "persist": false }},
    "data-directory": "@DATA@",
    "server-id": {{ "type": "EN", "enterprise-id": 2495, "identifier": "6b65612d74657374" }},"#,
                self.interfaces_config
            ),
            Service::D2 => format!(r#""ip-address": "127.0.0.1", "port": {},"#, self.d2_port),
        };
        format!(
            r#"// written by the write-pattern cases (tests/common/write_patterns)
{{
  "{key}": {{
    {fixed}
    "control-socket": {{ "socket-type": "unix", "socket-name": "@SOCKET@" }},
    "loggers": [ {{
      "name": "{daemon}",
      "output_options": [ {{ "output": "@LOG@" }} ],
      "severity": "INFO"
    }} ],
    /* what the tests change */
    {body}
  }}
}}
"#,
            key = self.service.config_key(),
            daemon = self.service.daemon_binary(),
        )
    }

    /// The config most cases run: the fixed part and `value`.
    pub fn standard(&self, value: u32) -> String {
        self.text(&self.line(value))
    }

    /// A body with `value` that Kea's validator refuses on meaning, not syntax (a pool
    /// outside its subnet, a DNS domain naming an undefined TSIG key), and words of
    /// Kea's refusal.
    pub fn invalid(&self, value: u32) -> (String, &'static str) {
        let line = self.line(value);
        match self.service {
            Service::Dhcp4 => (
                format!(
                    r#"{line}, "subnet4": [ {{ "id": 1, "subnet": "192.0.2.0/24",
               "pools": [ {{ "pool": "198.51.100.1 - 198.51.100.9" }} ] }} ]"#
                ),
                "does not match the prefix of a subnet",
            ),
            Service::Dhcp6 => (
                format!(
                    r#"{line}, "subnet6": [ {{ "id": 1, "subnet": "2001:db8:1::/64",
               "pools": [ {{ "pool": "2001:db8:2::100 - 2001:db8:2::1ff" }} ] }} ]"#
                ),
                "does not match the prefix of a subnet",
            ),
            Service::D2 => (
                format!(
                    r#"{line}, "forward-ddns": {{ "ddns-domains": [ {{ "name": "example.com.",
               "key-name": "no-such-key", "dns-servers": [ {{ "ip-address": "127.0.0.1" }} ] }} ] }}"#
                ),
                "specifies an undefined key: no-such-key",
            ),
        }
    }

    /// [`Template::key`] in Kea's in-memory config (config-get).
    pub fn value(&self, kea: &KeaServer) -> Option<u64> {
        let reply = kea.command(r#"{"command":"config-get"}"#);
        reply["arguments"][self.service.config_key()][self.key()].as_u64()
    }

    /// The daemon from `text`, its config file backdated: older than Kea's start-up
    /// load, so the agent's first look finds Kea in sync.
    pub fn start(&self, text: &str) -> KeaServer {
        let kea = KeaServer::start_with_file(self.service, text);
        backdate(&kea.config_path);
        kea
    }
}

// ---------------------------------------------------------------------------------------
// The agent

/// How to run the agent.
#[derive(Clone, Copy, Debug)]
pub struct AgentOptions {
    pub check_interval_s: u64,
    /// `settle_ms` of `[agent]`.
    pub settle_ms: u64,
    /// KEA_SYNC_AGENT_LOG.
    pub log_filter: &'static str,
}

pub const DEFAULT_AGENT: AgentOptions = AgentOptions {
    check_interval_s: 60,
    settle_ms: 50,
    log_filter: "info",
};

/// `kea-sync-agent run` with a `[[service]]` table of name and config file for each of
/// `services` (what discovery of /etc/kea makes), in a new dir with empty state.
pub fn start_agent(services: &[(Service, &Path)], options: AgentOptions) -> Agent {
    let tables = services
        .iter()
        .map(|(service, config_file)| TomlTable::service(*service, config_file))
        .collect();
    start_agent_with(tables, options)
}

/// `kea-sync-agent run` with these `[[service]]` tables.
pub fn start_agent_with(tables: Vec<TomlTable>, options: AgentOptions) -> Agent {
    let toml = tables.into_iter().fold(
        AgentToml::new()
            .settle_ms(options.settle_ms)
            .check_interval_s(options.check_interval_s),
        AgentToml::service,
    );
    Agent::new().log_filter(options.log_filter).start(&toml)
}

/// Polls `done` until it holds; fails with the agent's log and the tail of each Kea's.
pub fn wait_until(what: &str, keas: &[&KeaServer], agent: &Agent, done: impl FnMut() -> bool) {
    agent.wait_while_running(what, WAIT, done, || logs(agent, keas));
}

/// The agent's log and the tail of each Kea's, for failure messages.
fn logs(agent: &Agent, keas: &[&KeaServer]) -> String {
    let mut text = format!("--- agent log ---\n{}", tail(&agent.log(), 80));
    for kea in keas {
        let name = kea.service.daemon_binary();
        text.push_str(&format!(
            "\n--- {name} log (tail) ---\n{}",
            tail(&kea.log(), 30)
        ));
    }
    text
}

// ---------------------------------------------------------------------------------------
// Fleets and fixtures

/// Which Kea daemons one agent manages, the one a case edits, and how the agent runs.
#[derive(Clone, Debug)]
pub struct Fleet {
    pub edited: Service,
    /// Every service the agent manages, `edited` among them, in Service::ALL order.
    pub services: Vec<Service>,
    pub options: AgentOptions,
}

impl Fleet {
    /// An agent managing `service` only.
    pub fn alone(service: Service) -> Fleet {
        Fleet {
            edited: service,
            services: vec![service],
            options: DEFAULT_AGENT,
        }
    }

    /// An agent managing dhcp4, dhcp6 and d2 at once (as on a stock host with all three
    /// config files), `edited` the one the case edits.
    pub fn all(edited: Service) -> Fleet {
        Fleet {
            edited,
            services: Service::ALL.to_vec(),
            options: DEFAULT_AGENT,
        }
    }

    /// The agent runs with `options`.
    pub fn options(self, options: AgentOptions) -> Fleet {
        Fleet { options, ..self }
    }

    /// Every daemon at its standard config with [`FIRST`], the agent watching their files.
    pub fn start(&self) -> Fixture {
        self.start_with(|t| t.standard(FIRST), |kea| kea.config_path.clone())
    }

    /// The edited daemon from `text(template)`, the others at their standard config;
    /// then the agent, watching the path `watch` returns for the edited one (it may
    /// rearrange the files first: a symlink, a `..data` layout).
    pub fn start_with(
        &self,
        text: impl FnOnce(&Template) -> String,
        watch: impl FnOnce(&KeaServer) -> PathBuf,
    ) -> Fixture {
        let mut text = Some(text);
        let servers: Vec<(Template, KeaServer)> = self
            .services
            .iter()
            .map(|&service| {
                let template = Template::new(service);
                let config = match text.take_if(|_| service == self.edited) {
                    Some(text) => text(&template),
                    None => template.standard(FIRST),
                };
                let kea = template.start(&config);
                (template, kea)
            })
            .collect();
        let watched = servers
            .iter()
            .find(|(template, _)| template.service == self.edited)
            .map(|(_, kea)| watch(kea))
            .expect("the edited service is in the fleet");
        let files: Vec<(Service, &Path)> = servers
            .iter()
            .map(|(template, kea)| {
                let file = if template.service == self.edited {
                    watched.as_path()
                } else {
                    kea.config_path.as_path()
                };
                (template.service, file)
            })
            .collect();
        let agent = start_agent(&files, self.options);
        Fixture::settle(agent, servers, self.edited)
    }
}

/// A Kea of a fixture, the template its file was written from, and what the fixture
/// counts from.
struct Server {
    template: Template,
    kea: KeaServer,
    /// Kea's successful reloads once the agent had settled.
    base_reloads: usize,
    /// The agent's Applied events for this service once it had settled.
    base_applied: usize,
}

/// What a case expects of a server so far: reloads since settling, in-memory value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expected {
    reloads: usize,
    value: Option<u64>,
}

/// Kea daemons with a settled agent in front of them. Fields drop in order: the agent
/// stops before the daemons do.
pub struct Fixture {
    pub agent: Agent,
    servers: Vec<Server>,
    /// Index of the server the case edits.
    edited: usize,
    expected: RefCell<Vec<Expected>>,
}

impl Fixture {
    /// Waits for the agent's first event for every server, which must find Kea in sync
    /// (each file is older than Kea's start-up load), and takes the counts from there.
    pub fn settle(agent: Agent, servers: Vec<(Template, KeaServer)>, edited: Service) -> Fixture {
        let keas: Vec<&KeaServer> = servers.iter().map(|(_, kea)| kea).collect();
        for (template, _) in &servers {
            let service = template.service;
            wait_until(
                &format!("the agent's first event for {service}"),
                &keas,
                &agent,
                || agent.service_event_count(service) >= 1,
            );
            assert_eq!(
                agent.service_events(service, "InSync").len(),
                1,
                "the agent's first event for {service} should find Kea in sync with the \
                 backdated file\n{}",
                agent.log()
            );
        }
        let edited = servers
            .iter()
            .position(|(template, _)| template.service == edited)
            .expect("the edited service is among the servers");
        let servers: Vec<Server> = servers
            .into_iter()
            .map(|(template, kea)| Server {
                base_reloads: kea.reload_count(),
                base_applied: agent.service_events(template.service, "Applied").len(),
                template,
                kea,
            })
            .collect();
        let expected = servers
            .iter()
            .map(|server| Expected {
                reloads: 0,
                value: server.template.value(&server.kea),
            })
            .collect();
        Fixture {
            agent,
            servers,
            edited,
            expected: RefCell::new(expected),
        }
    }

    /// The edited Kea.
    pub fn kea(&self) -> &KeaServer {
        &self.servers[self.edited].kea
    }

    /// The edited Kea, to stop or restart it.
    pub fn kea_mut(&mut self) -> &mut KeaServer {
        &mut self.servers[self.edited].kea
    }

    /// The edited Kea's config file (the target, when the agent watches a link to it).
    pub fn path(&self) -> &Path {
        &self.kea().config_path
    }

    /// The template of the edited Kea's file.
    pub fn template(&self) -> &Template {
        &self.servers[self.edited].template
    }

    /// The edited Kea's config with `body`, as it would be on disk.
    pub fn text_with(&self, body: &str) -> String {
        self.kea().materialize(&self.template().text(body))
    }

    /// The edited Kea's standard config with `value`, as it would be on disk.
    pub fn text(&self, value: u32) -> String {
        self.text_with(&self.template().line(value))
    }

    /// The edited value in the edited Kea's memory.
    pub fn value(&self) -> Option<u64> {
        self.template().value(self.kea())
    }

    /// The agent's events with `outcome` for the edited service.
    pub fn events(&self, outcome: &str) -> Vec<String> {
        self.agent.service_events(self.template().service, outcome)
    }

    /// Polls `done`; fails with every log.
    pub fn wait(&self, what: &str, done: impl FnMut() -> bool) {
        wait_until(what, &self.keas(), &self.agent, done);
    }

    /// The edited Kea's successful reloads since the agent settled.
    pub fn reloads(&self) -> usize {
        self.reloads_of(&self.servers[self.edited])
    }

    /// The agent's Applied events for the edited service since it settled.
    pub fn applied(&self) -> usize {
        self.applied_of(&self.servers[self.edited])
    }

    /// Waits until `value` is live in the edited Kea after `reloads` reloads in all
    /// (since the agent settled) and the agent reported them; then, after a quiet spell,
    /// asserts every count and value ([`Fixture::assert_counts`]).
    pub fn expect_live(&self, value: u32, reloads: usize) {
        self.expect(&[(self.template().service, value, reloads)]);
    }

    /// [`Fixture::expect_live`] for several services at once: (service, value, reloads).
    pub fn expect(&self, edits: &[(Service, u32, usize)]) {
        let indices: Vec<(usize, Expected)> = edits
            .iter()
            .map(|&(service, value, reloads)| {
                let expected = Expected {
                    reloads,
                    value: Some(u64::from(value)),
                };
                (self.index(service), expected)
            })
            .collect();
        for &(index, expected) in &indices {
            self.expected.borrow_mut()[index] = expected;
        }
        let what = format!("{edits:?} (service, value, reloads) live");
        self.wait(&what, || {
            indices.iter().all(|&(index, expected)| {
                let server = &self.servers[index];
                self.reloads_of(server) >= expected.reloads
                    && self.applied_of(server) >= expected.reloads
                    && server.template.value(&server.kea) == expected.value
            })
        });
        sleep(QUIET);
        self.assert_counts();
    }

    /// After a quiet spell: the edited Kea still at `reloads` reloads (since the agent
    /// settled) and its value unchanged; the others as before.
    pub fn expect_no_more_reloads(&self, reloads: usize) {
        self.expected.borrow_mut()[self.edited].reloads = reloads;
        sleep(QUIET);
        self.assert_counts();
    }

    /// The edited Kea now runs `value` after `reloads` reloads, however many those were
    /// (a burst); then every count as [`Fixture::assert_counts`].
    pub fn accept_live(&self, value: u32, reloads: usize) {
        self.expected.borrow_mut()[self.edited] = Expected {
            reloads,
            value: Some(u64::from(value)),
        };
        self.assert_counts();
    }

    /// Writes `text` over the edited file and expects it rejected, once, with `kea_says`
    /// in the event, no reload, and Kea still running its config.
    pub fn expect_rejected(&self, text: &str, kea_says: &str) {
        let before = self.events("Rejected").len();
        fs::write(self.path(), text).expect("invalid edit");
        self.wait("a Rejected event", || {
            self.events("Rejected").len() > before
        });
        let reloads = self.expected.borrow()[self.edited].reloads;
        self.expect_no_more_reloads(reloads);
        let rejected = self.events("Rejected");
        assert_eq!(rejected.len(), before + 1, "{rejected:#?}");
        assert!(
            rejected[before].contains(kea_says),
            "the Rejected line should carry Kea's text ({kea_says:?}): {}",
            rejected[before]
        );
    }

    /// No Rejected event for the edited service: `what` (a passing state of the file)
    /// was not reported.
    pub fn expect_nothing_rejected(&self, what: &str) {
        let rejected = self.events("Rejected");
        assert!(rejected.is_empty(), "{what} was reported: {rejected:#?}");
    }

    /// For every server: successful reloads and the agent's Applied events since it
    /// settled as expected, the in-memory value as expected, no failed reload.
    pub fn assert_counts(&self) {
        let context = || logs(&self.agent, &self.keas());
        for (server, expected) in self.servers.iter().zip(self.expected.borrow().iter()) {
            let service = server.template.service;
            assert_eq!(
                self.reloads_of(server),
                expected.reloads,
                "{service}: Kea's successful reloads\n{}",
                context()
            );
            assert_eq!(
                self.applied_of(server),
                expected.reloads,
                "{service}: the agent's Applied events\n{}",
                context()
            );
            assert_eq!(
                server.template.value(&server.kea),
                expected.value,
                "{service}: in-memory {}",
                server.template.key()
            );
            let failed = server.kea.failed_reloads();
            assert!(
                failed.is_empty(),
                "{service}: Kea saw failed reloads: {failed:#?}\n{}",
                context()
            );
        }
    }

    fn index(&self, service: Service) -> usize {
        self.servers
            .iter()
            .position(|server| server.template.service == service)
            .unwrap_or_else(|| panic!("{service} is not in this fixture"))
    }

    /// The Kea running `service`.
    pub fn kea_of(&self, service: Service) -> &KeaServer {
        &self.servers[self.index(service)].kea
    }

    /// The standard config of `service` with `value`, as it would be on disk.
    pub fn text_of(&self, service: Service, value: u32) -> String {
        let server = &self.servers[self.index(service)];
        server.kea.materialize(&server.template.standard(value))
    }

    fn keas(&self) -> Vec<&KeaServer> {
        self.servers.iter().map(|server| &server.kea).collect()
    }

    fn reloads_of(&self, server: &Server) -> usize {
        server
            .kea
            .reload_count()
            .saturating_sub(server.base_reloads)
    }

    fn applied_of(&self, server: &Server) -> usize {
        self.agent
            .service_events(server.template.service, "Applied")
            .len()
            .saturating_sub(server.base_applied)
    }
}

// ---------------------------------------------------------------------------------------
// Ways of writing a file

/// Writes `text` to a temp file beside `path` and renames it over `path`.
pub fn write_by_rename(path: &Path, text: &str) {
    let temp = path.with_extension("conf.tmp-agent-e2e");
    fs::write(&temp, text).expect("write temp file");
    fs::rename(&temp, path).expect("rename over the config");
}

/// Removes `path` and hard-links a new file with `text` into its place: the config appears
/// whole (created, no close after writing under its name), as some deploy tools do it.
pub fn write_by_link(path: &Path, text: &str) {
    let temp = path.with_extension("conf.tmp-agent-e2e");
    fs::write(&temp, text).expect("write temp file");
    fs::remove_file(path).expect("remove the config");
    fs::hard_link(&temp, path).expect("link the new config into place");
    fs::remove_file(&temp).expect("remove the temp name");
}

/// Runs `program` with `args`; fails unless it succeeds.
pub fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(status.success(), "{program} {args:?}: {status}");
}

/// The file name of `path` (a config file's), as text.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| panic!("{} has no file name", path.display()))
}
