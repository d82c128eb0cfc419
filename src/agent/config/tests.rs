use super::*;
use crate::kea::ControlChannel;
use serde_json::json;

const FILE: &str = "/etc/kea-sync-agent/agent.toml";

fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
    AgentConfig::parse(text, Path::new(FILE))
}

#[test]
fn full_config_parses() {
    let text = r#"
[agent]
state_dir = "/srv/state"
settle_ms = 200
check_interval_s = 0
admin_socket = "/run/kas/admin.sock"
admin_group = "kea-admins"
metrics_listen = "127.0.0.1:9547"
log_format = "json"

[[service]]
name = "dhcp4"
config_file = "/srv/kea/dhcp4.conf"
control_url = "https://127.0.0.1:8000"
user = "admin"
password_file = "/etc/kea/pw"
ca_file = "/etc/kea/ca.pem"
client_cert = "/etc/kea/c.pem"
client_key = "/etc/kea/k.pem"
validator = "/opt/kea/sbin/kea-dhcp4"
include_base = "/srv/kea"
timeout_s = 5

[[service]]
name = "d2"
control_socket = "/run/kea/kea-ddns-ctrl-socket"
"#;
    let config = parse(text).expect("parses");
    assert_eq!(config.source, ConfigSource::File(PathBuf::from(FILE)));
    assert_eq!(
        config.agent,
        AgentSettings {
            state_dir: PathBuf::from("/srv/state"),
            settle: Duration::from_millis(200),
            check_interval: None,
            admin_socket: PathBuf::from("/run/kas/admin.sock"),
            admin_group: Some("kea-admins".into()),
            metrics_listen: Some("127.0.0.1:9547".parse().expect("address")),
            log_format: LogFormat::Json,
        }
    );
    let source = ConfigSource::File(PathBuf::from(FILE));
    let expected = vec![
        ServiceConfig {
            service: Service::Dhcp4,
            config_file: PathBuf::from("/srv/kea/dhcp4.conf"),
            control_socket: None,
            control_url: Some("https://127.0.0.1:8000".into()),
            http: HttpSettings {
                user: Some("admin".into()),
                password_file: Some("/etc/kea/pw".into()),
                ca_file: Some("/etc/kea/ca.pem".into()),
                client_cert: Some("/etc/kea/c.pem".into()),
                client_key: Some("/etc/kea/k.pem".into()),
            },
            validator: Some("/opt/kea/sbin/kea-dhcp4".into()),
            include_base: Some("/srv/kea".into()),
            timeout: Duration::from_secs(5),
            validation: Thoroughness::Auto,
            runtime_changes: RuntimeChanges::Reload,
            ha: HaSettings::default(),
            agent_config: source.clone(),
        },
        ServiceConfig {
            control_socket: Some("/run/kea/kea-ddns-ctrl-socket".into()),
            agent_config: source,
            ..ServiceConfig::new(Service::D2)
        },
    ];
    assert_eq!(config.services, expected);
}

#[test]
fn validation_and_runtime_changes_are_chosen_per_service() {
    let config = parse(
        "[[service]]\nname = \"dhcp4\"\nvalidation = \"full\"\nruntime_changes = \"keep\"\n\n\
         [[service]]\nname = \"dhcp6\"\nvalidation = \"basic\"\n",
    )
    .expect("parses");
    let chosen: Vec<(Thoroughness, RuntimeChanges)> = config
        .services
        .iter()
        .map(|s| (s.validation, s.runtime_changes))
        .collect();
    assert_eq!(
        chosen,
        [
            (Thoroughness::Full, RuntimeChanges::Keep),
            (Thoroughness::Basic, RuntimeChanges::Reload)
        ]
    );
    let error =
        parse("[[service]]\nname = \"dhcp4\"\nvalidation = \"paranoid\"\n").expect_err("refused");
    let text = error.to_string();
    assert!(
        text.contains(":3:") && text.contains("auto") && text.contains("full"),
        "names the line and the choices: {text}"
    );
}

#[test]
fn the_ha_table_is_the_same_for_every_service() {
    let config = parse(
        "[ha]\nsecondary_edits = \"refuse\"\ndelay_ms = 500\nmax_hold_s = 30\n\
         after_max_hold = \"reload\"\nfollow_timeout_s = 20\n\
         [[service]]\nname = \"dhcp4\"\n[[service]]\nname = \"dhcp6\"\n",
    )
    .expect("valid");
    let expected = HaSettings {
        secondary_edits: SecondaryEdits::Refuse,
        delay: Duration::from_millis(500),
        max_hold: Duration::from_secs(30),
        after_max_hold: AfterMaxHold::Reload,
        follow_timeout: Duration::from_secs(20),
    };
    assert!(
        config.services.iter().all(|s| s.ha == expected),
        "{config:?}"
    );
    let defaults = parse("[[service]]\nname = \"dhcp4\"\n").expect("valid");
    assert_eq!(defaults.services[0].ha, HaSettings::default());
    assert_eq!(HaSettings::default().secondary_edits, SecondaryEdits::Warn);
    assert_eq!(HaSettings::default().after_max_hold, AfterMaxHold::Wait);
}

#[test]
fn minimal_config_gets_defaults() {
    let config = parse("[[service]]\nname = \"dhcp4\"\n").expect("parses");
    assert_eq!(config.agent, AgentSettings::default());
    assert_eq!(
        config.agent.state_dir,
        PathBuf::from("/var/lib/kea-sync-agent")
    );
    assert_eq!(config.agent.settle, Duration::from_millis(50));
    assert_eq!(config.agent.check_interval, Some(Duration::from_secs(60)));
    let [service] = config.services.as_slice() else {
        panic!("one service expected: {:?}", config.services);
    };
    assert_eq!(
        *service,
        ServiceConfig {
            agent_config: ConfigSource::File(PathBuf::from(FILE)),
            ..ServiceConfig::new(Service::Dhcp4)
        }
    );
    assert_eq!(
        service.config_file,
        PathBuf::from("/etc/kea/kea-dhcp4.conf")
    );
    assert_eq!(service.timeout, Duration::from_secs(60));
}

/// Each bad config: the text, the position expected in the message (None:
/// file only) and words the message must contain.
#[test]
fn every_problem_of_a_broken_config_is_said_in_the_file_s_order() {
    let text = "[agent]\nsettle_ms = \"fast\"\nstate_dir = 5\n\
                [[service]]\nname = \"dhcp9\"\n\
                [[service]]\nname = \"dhcp4\"\ntimeout_s = \"x\"\nbogus = 1\n\
                [upstream]\nurl = \"ftp://x\"\n\
                [nonsense]\n";
    let message = parse(text).expect_err("broken").to_string();
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines[0], format!("7 problems in {FILE}:"), "{message}");
    let said = [
        "2:13: `settle_ms` must be a whole number (like 50), not the string \"fast\"",
        "3:13: `state_dir` must be a path in quotes, not the number 5",
        "5:8: unknown Kea service \"dhcp9\"",
        "8:13: `timeout_s` must be a whole number (like 50), not the string \"x\"",
        "9:1: unknown field `bogus`",
        "11:7: control_url \"ftp://x\" must start with http:// or https://",
        "12:2: unknown table `nonsense`",
    ];
    for (line, words) in lines[1..].iter().zip(said) {
        assert!(
            line.starts_with(&format!("  {FILE}:{words}")),
            "{line:?} is not {words:?}"
        );
    }
    assert_eq!(lines.len(), 8, "{message}");
}

#[test]
fn a_config_without_services_says_so_beside_its_other_problems() {
    let message = parse("[agent]\nsettle_ms = \"soon\"\n")
        .expect_err("broken")
        .to_string();
    assert!(
        message.starts_with(&format!("2 problems in {FILE}:")),
        "{message}"
    );
    assert!(
        message.contains("`settle_ms` must be a whole number"),
        "{message}"
    );
    assert!(message.contains("no [[service]] table"), "{message}");
}

#[test]
fn bad_configs_are_refused_with_file_and_position() {
    let svc = "[[service]]\nname = \"dhcp4\"\n";
    type Case = (String, Option<(usize, usize)>, &'static [&'static str]);
    let cases: Vec<Case> = vec![
        (
            format!("{svc}colour = \"blue\"\n"),
            Some((3, 1)),
            &["unknown field `colour`"],
        ),
        (
            format!("[agent]\nsettle = 5\n{svc}"),
            Some((2, 1)),
            &["unknown field `settle`"],
        ),
        (
            format!("[upstream]\nurl = \"https://x\"\nretries = 3\n{svc}"),
            Some((3, 1)),
            &["unknown field `retries`"],
        ),
        (
            format!("[upstream]\nurl = \"ftp://x\"\n{svc}"),
            Some((2, 7)),
            &["ftp://x"],
        ),
        (
            format!("[upstream]\nurl = \"https://x\"\nmax_outbox_bytes = \"1TB\"\n{svc}"),
            Some((3, 20)),
            &["unknown size unit"],
        ),
        (
            format!("[agent]\nmetrics_listen = \"localhost\"\n{svc}"),
            Some((2, 18)),
            &["metrics_listen \"localhost\" is not an address and port"],
        ),
        (
            format!("{svc}[ha]\nsecondary_edits = \"ignore\"\n"),
            Some((4, 19)),
            &["unknown variant `ignore`", "apply", "warn", "refuse"],
        ),
        (
            format!("{svc}[ha]\nfollow_timeout_s = 600\n"),
            Some((4, 20)),
            &["follow_timeout_s is at most 90 s", "watchdog"],
        ),
        (
            format!("{svc}[ha]\nmax_hold_s = 0\n"),
            Some((4, 14)),
            &["max_hold_s must be at least 1"],
        ),
        (
            format!("{svc}[[hook]]\ncommand = []\n"),
            Some((4, 11)),
            &["hook command is empty"],
        ),
        (
            format!("{svc}[[hook]]\ncommand = [\"x\"]\nrun = \"x\"\n"),
            Some((5, 1)),
            &["unknown field `run`"],
        ),
        (
            format!("{svc}[[service]]\nname = \"dhcp4\"\n"),
            Some((4, 8)),
            &["dhcp4", "twice", "line 2"],
        ),
        (
            format!("{svc}[[service]]\nname = \"ddns\"\n[[service]]\nname = \"d2\"\n"),
            Some((6, 8)),
            &["d2", "twice", "line 4"],
        ),
        (
            format!("{svc}control_socket = \"/run/s\"\ncontrol_url = \"http://h:8000\"\n"),
            Some((4, 15)),
            &["both control_socket and control_url"],
        ),
        (
            "[[service]]\nname = \"dhcp5\"\n".into(),
            Some((2, 8)),
            &["unknown Kea service \"dhcp5\"", "dhcp4, dhcp6 or d2"],
        ),
        (
            format!("[agent]\nsettle_ms = \"fast\"\n{svc}"),
            Some((2, 13)),
            &[
                "`settle_ms` must be a whole number",
                "not the string \"fast\"",
            ],
        ),
        (
            format!("[agent]\nsettle_ms = 60001\n{svc}"),
            Some((2, 13)),
            &["60001", "60000"],
        ),
        (
            format!("{svc}user = \"admin\"\n"),
            Some((3, 8)),
            &["user without password_file"],
        ),
        (
            format!("{svc}password_file = \"/pw\"\n"),
            Some((3, 17)),
            &["password_file without user"],
        ),
        (
            format!("{svc}client_key = \"/k\"\n"),
            Some((3, 14)),
            &["client_key without client_cert"],
        ),
        (
            format!("{svc}control_url = \"127.0.0.1:8000\"\n"),
            Some((3, 15)),
            &["http:// or https://"],
        ),
        (
            format!("{svc}timeout_s = 0\n"),
            Some((3, 13)),
            &["timeout_s"],
        ),
        (
            "[[service]]\nconfig_file = \"/x\"\n".into(),
            Some((1, 1)),
            &["missing field `name`"],
        ),
        (
            "[agent]\nsettle_ms = 10\n".into(),
            None,
            &["no [[service]] table"],
        ),
        (
            "[[service]\n".into(),
            Some((1, 11)),
            &["unclosed array table"],
        ),
    ];
    for (text, position, words) in cases {
        let error = parse(&text).expect_err(&text);
        let message = error.to_string();
        let prefix = match position {
            Some((line, col)) => format!("{FILE}:{line}:{col}: "),
            None => format!("{FILE}: "),
        };
        assert!(
            message.starts_with(&prefix),
            "{text:?}: {message:?} should start with {prefix:?}"
        );
        for word in words {
            assert!(
                message.contains(word),
                "{text:?}: {message:?} lacks {word:?}"
            );
        }
    }
}

#[test]
fn load_reads_the_file_and_names_it_when_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.toml");
    let error = AgentConfig::load(&path).expect_err("missing");
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(error.to_string().contains(&path.display().to_string()));

    std::fs::write(&path, "[[service]]\nname = \"dhcp6\"\nbogus = 1\n").expect("write");
    let message = AgentConfig::load(&path).expect_err("bogus").to_string();
    assert!(
        message.starts_with(&format!("{}:3:1: ", path.display())),
        "{message}"
    );

    std::fs::write(&path, "[[service]]\nname = \"dhcp6\"\n").expect("write");
    let config = AgentConfig::load(&path).expect("loads");
    assert_eq!(config.source, ConfigSource::File(path));
    assert!(config.service(Service::Dhcp6).is_some());
}

#[test]
fn discovery_finds_services_whose_stock_file_exists() {
    let etc = tempfile::tempdir().expect("tempdir");
    std::fs::write(etc.path().join("kea-dhcp4.conf"), "{}").expect("write");
    std::fs::write(etc.path().join("kea-ctrl-agent.conf"), "{}").expect("write");
    let config = AgentConfig::discover(etc.path()).expect("discovers");
    assert_eq!(config.source, ConfigSource::Discovered);
    assert_eq!(config.agent, AgentSettings::default());
    assert_eq!(
        config.services,
        vec![ServiceConfig {
            config_file: etc.path().join("kea-dhcp4.conf"),
            ..ServiceConfig::new(Service::Dhcp4)
        }]
    );
}

#[test]
fn discovery_without_kea_files_names_what_it_looked_for() {
    let etc = tempfile::tempdir().expect("tempdir");
    let error = AgentConfig::discover(etc.path()).expect_err("nothing there");
    let message = error.to_string();
    for name in ["kea-dhcp4.conf", "kea-dhcp6.conf", "kea-dhcp-ddns.conf"] {
        let path = etc.path().join(name).display().to_string();
        assert!(message.contains(&path), "{message} lacks {path}");
    }
}

#[test]
fn from_cli_prefers_given_then_default_file_then_discovery() {
    let root = tempfile::tempdir().expect("tempdir");
    let etc = root.path().join("etc-kea");
    std::fs::create_dir(&etc).expect("mkdir");
    let default = root.path().join("agent.toml");
    let given = root.path().join("given.toml");
    std::fs::write(&given, "[[service]]\nname = \"dhcp6\"\n").expect("write");

    let error = AgentConfig::from_cli_in(None, &default, &etc).expect_err("nothing");
    assert!(
        error.to_string().contains(&default.display().to_string()),
        "{error}"
    );

    std::fs::write(etc.join("kea-dhcp-ddns.conf"), "{}").expect("write");
    let config = AgentConfig::from_cli_in(None, &default, &etc).expect("discovers");
    assert_eq!(config.source, ConfigSource::Discovered);
    assert!(config.service(Service::D2).is_some());

    std::fs::write(&default, "[[service]]\nname = \"dhcp4\"\n").expect("write");
    let config = AgentConfig::from_cli_in(None, &default, &etc).expect("default");
    assert_eq!(config.source, ConfigSource::File(default.clone()));

    let config = AgentConfig::from_cli_in(Some(&given), &default, &etc).expect("given");
    assert_eq!(config.source, ConfigSource::File(given));
}

#[test]
fn control_endpoint_from_kea_config() {
    use ControlEndpoint::{Http, Unix};
    let cases = [
        (
            "Kea 2.x control-socket",
            json!({"Dhcp4": {"control-socket": {"socket-type": "unix", "socket-name": "/run/kea/kea4-ctrl-socket"}}}),
            Service::Dhcp4,
            Some(Unix("/run/kea/kea4-ctrl-socket".into())),
        ),
        (
            "Kea 3.x control-sockets with unix",
            json!({"Dhcp6": {"control-sockets": [{"socket-type": "unix", "socket-name": "kea6-ctrl-socket"}]}}),
            Service::Dhcp6,
            Some(Unix("kea6-ctrl-socket".into())),
        ),
        (
            "only http",
            json!({"Dhcp4": {"control-sockets": [{"socket-type": "http", "socket-address": "10.0.0.1", "socket-port": 8004}]}}),
            Service::Dhcp4,
            Some(Http("http://10.0.0.1:8004".into())),
        ),
        (
            "http with defaults",
            json!({"Dhcp4": {"control-sockets": [{"socket-type": "http"}]}}),
            Service::Dhcp4,
            Some(Http("http://127.0.0.1:8000".into())),
        ),
        (
            "https",
            json!({"DhcpDdns": {"control-sockets": [{"socket-type": "https", "socket-address": "::1", "socket-port": 8443,
                "trust-anchor": "/ca.pem", "cert-file": "/c.pem", "key-file": "/k.pem"}]}}),
            Service::D2,
            Some(Http("https://[::1]:8443".into())),
        ),
        (
            "http with TLS files is https",
            json!({"Dhcp4": {"control-sockets": [{"socket-type": "http", "socket-address": "0.0.0.0",
                "trust-anchor": "/ca.pem", "cert-file": "/c.pem", "key-file": "/k.pem"}]}}),
            Service::Dhcp4,
            Some(Http("https://127.0.0.1:8000".into())),
        ),
        (
            "first usable entry",
            json!({"Dhcp4": {"control-sockets": [{"socket-type": "websocket"}, {"socket-type": "unix"},
                {"socket-type": "http", "socket-port": 8001}, {"socket-type": "unix", "socket-name": "s"}]}}),
            Service::Dhcp4,
            Some(Http("http://127.0.0.1:8001".into())),
        ),
        (
            "none",
            json!({"Dhcp4": {"interfaces-config": {"interfaces": []}}}),
            Service::Dhcp4,
            None,
        ),
        (
            "other service's socket only",
            json!({"Dhcp6": {"control-socket": {"socket-type": "unix", "socket-name": "/s"}}}),
            Service::Dhcp4,
            None,
        ),
        (
            "port out of range",
            json!({"Dhcp4": {"control-sockets": [{"socket-type": "http", "socket-port": 70000}]}}),
            Service::Dhcp4,
            None,
        ),
    ];
    for (what, config, service, expected) in cases {
        assert_eq!(
            control_endpoint_from_config(&config, service),
            expected,
            "{what}"
        );
    }
}

/// A Kea config in a temp dir, the control socket spliced in by an include.
fn kea_config_with_included(dir: &Path, included: &str) -> ServiceConfig {
    let main = dir.join("kea-dhcp4.conf");
    std::fs::write(
        &main,
        "// managed by hand\n{ \"Dhcp4\": {\n  <?include \"ctrl.json\"?>\n  \"valid-lifetime\": 4000, } }\n",
    )
    .expect("write main");
    std::fs::write(dir.join("ctrl.json"), included).expect("write include");
    ServiceConfig {
        config_file: main,
        include_base: Some(dir.to_path_buf()),
        agent_config: ConfigSource::File(PathBuf::from(FILE)),
        ..ServiceConfig::new(Service::Dhcp4)
    }
}

#[test]
fn control_channel_reads_the_socket_through_an_include() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = kea_config_with_included(
        dir.path(),
        "\"control-socket\": { \"socket-type\": \"unix\", \"socket-name\": \"sockets/kea4\" }, # ctrl\n",
    );
    match service.control_channel().expect("channel") {
        ControlChannel::Unix(unix) => assert_eq!(unix.path(), dir.path().join("sockets/kea4")),
        other => panic!("unix expected: {other:?}"),
    }
}

#[test]
fn control_channel_reads_a_kea3_http_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = kea_config_with_included(
        dir.path(),
        "\"control-sockets\": [ { \"socket-type\": \"http\", \"socket-port\": 8004 } ],",
    );
    match service.control_channel().expect("channel") {
        ControlChannel::Http(http) => assert_eq!(http.url(), "http://127.0.0.1:8004"),
        other => panic!("http expected: {other:?}"),
    }
}

#[test]
fn control_channel_prefers_the_agent_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from_file = kea_config_with_included(dir.path(), "");
    let socket = ServiceConfig {
        control_socket: Some("/run/kea/x".into()),
        ..from_file.clone()
    };
    match socket.control_channel().expect("channel") {
        ControlChannel::Unix(unix) => assert_eq!(unix.path(), Path::new("/run/kea/x")),
        other => panic!("unix expected: {other:?}"),
    }
    let url = ServiceConfig {
        control_url: Some("http://127.0.0.1:8000".into()),
        ..from_file
    };
    match url.control_channel().expect("channel") {
        ControlChannel::Http(http) => assert_eq!(http.url(), "http://127.0.0.1:8000"),
        other => panic!("http expected: {other:?}"),
    }
}

#[test]
fn control_channel_errors_name_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = kea_config_with_included(dir.path(), "");
    let message = service
        .control_channel()
        .expect_err("no socket")
        .to_string();
    let main = service.config_file.display().to_string();
    assert!(
        message.starts_with(&format!("{main} has no usable control-socket for Dhcp4")),
        "{message}"
    );
    assert!(message.contains(FILE), "{message}");

    let discovered = ServiceConfig {
        agent_config: ConfigSource::Discovered,
        ..service.clone()
    };
    let message = discovered
        .control_channel()
        .expect_err("no socket")
        .to_string();
    assert!(message.contains(DEFAULT_AGENT_CONFIG), "{message}");

    std::fs::remove_file(dir.path().join("ctrl.json")).expect("rm");
    let message = service
        .control_channel()
        .expect_err("no include")
        .to_string();
    assert!(message.contains("ctrl.json"), "{message}");

    let missing_password = ServiceConfig {
        control_url: Some("http://127.0.0.1:8000".into()),
        http: HttpSettings {
            user: Some("admin".into()),
            password_file: Some(dir.path().join("no-such-password")),
            ..HttpSettings::default()
        },
        ..service
    };
    let message = missing_password
        .control_channel()
        .expect_err("no password")
        .to_string();
    assert!(message.contains("no-such-password"), "{message}");
}

#[test]
fn include_base_configured_wins() {
    let service = ServiceConfig {
        include_base: Some("/srv/kea".into()),
        ..ServiceConfig::new(Service::Dhcp4)
    };
    assert_eq!(service.resolve_include_base(), PathBuf::from("/srv/kea"));
    let unserved = ServiceConfig {
        config_file: "/nonexistent/kea-dhcp4.conf".into(),
        ..ServiceConfig::new(Service::Dhcp4)
    };
    assert_eq!(unserved.resolve_include_base(), PathBuf::from("/"));
}

#[test]
fn upstream_and_hooks_parse_with_defaults() {
    let text = "[upstream]\nurl = \"https://central.example.net/v1/events\"\ntoken_file = \"/etc/kea-sync-agent/token\"\nmax_outbox_bytes = \"2GiB\"\n\
                [[service]]\nname = \"dhcp4\"\n[[hook]]\ncommand = [\"/usr/local/bin/poke\", \"--site\", \"a\"]\n";
    let config = parse(text).expect("valid");
    let upstream = config.upstream.expect("upstream");
    assert_eq!(upstream.url, "https://central.example.net/v1/events");
    assert_eq!(
        upstream.timeout,
        crate::upstream::config::DEFAULT_UPSTREAM_TIMEOUT
    );
    assert_eq!(config.outbox.max_bytes, 2 << 30);
    assert_eq!(
        config.outbox.max_events,
        crate::upstream::config::DEFAULT_MAX_OUTBOX_EVENTS
    );
    assert_eq!(config.hooks.len(), 1);
    assert_eq!(
        config.hooks[0].command,
        ["/usr/local/bin/poke", "--site", "a"]
    );
    let plain = parse("[[service]]\nname = \"dhcp4\"\n").expect("valid");
    assert!(plain.upstream.is_none() && plain.hooks.is_empty());
}
