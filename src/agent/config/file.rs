//! The agent config file: TOML into checked settings. Pure: text in, config
//! or a positioned error out.

use super::{
    AfterMaxHold, AgentConfig, AgentSettings, ConfigError, ConfigLocation, ConfigSource,
    DEFAULT_TIMEOUT, HaSettings, HttpSettings, LogFormat, MAX_HA_FOLLOW, MAX_SETTLE,
    RuntimeChanges, SecondaryEdits, ServiceConfig,
};
use crate::kea::Service;
use crate::upstream::config::{DEFAULT_HOOK_TIMEOUT, DEFAULT_UPSTREAM_TIMEOUT, parse_size};
use crate::upstream::{HookConfig, OutboxLimits, UpstreamConfig};
use crate::validate::Thoroughness;
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// The file as written: each top-level table is one field, read on its own
/// ([`read_file`]) so that a mistake in one does not hide those in the others.
#[derive(Debug, Default)]
struct AgentFile {
    agent: AgentTable,
    services: Vec<ServiceTable>,
    upstream: Option<UpstreamTable>,
    hooks: Vec<HookTable>,
    ha: HaTable,
    /// The file has `[[service]]` tables, read or not.
    names_services: bool,
}

/// The top-level tables, for the error on any other.
const TABLES: &str = "[agent], [[service]], [upstream], [[hook]], [ha]";

/// `[ha]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HaTable {
    secondary_edits: Option<SecondaryEdits>,
    delay_ms: Option<u64>,
    max_hold_s: Option<Spanned<u64>>,
    after_max_hold: Option<AfterMaxHold>,
    follow_timeout_s: Option<Spanned<u64>>,
}

/// `[upstream]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamTable {
    url: Spanned<String>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    client_cert: Option<Spanned<PathBuf>>,
    client_key: Option<Spanned<PathBuf>>,
    timeout_s: Option<Spanned<u64>>,
    max_outbox_events: Option<usize>,
    max_outbox_bytes: Option<Spanned<Size>>,
}

/// A size as a number of bytes or a string with a unit ("1GiB").
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

/// One `[[hook]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HookTable {
    command: Spanned<Vec<String>>,
    timeout_s: Option<Spanned<u64>>,
}

/// `[agent]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentTable {
    state_dir: Option<PathBuf>,
    settle_ms: Option<Spanned<u64>>,
    check_interval_s: Option<u64>,
    admin_socket: Option<PathBuf>,
    admin_group: Option<String>,
    metrics_listen: Option<Spanned<String>>,
    log_format: Option<LogFormat>,
}

/// One `[[service]]` as written; spans kept where validation may complain.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceTable {
    name: Spanned<String>,
    config_file: Option<PathBuf>,
    control_socket: Option<Spanned<PathBuf>>,
    control_url: Option<Spanned<String>>,
    validator: Option<PathBuf>,
    include_base: Option<PathBuf>,
    user: Option<Spanned<String>>,
    password_file: Option<Spanned<PathBuf>>,
    ca_file: Option<PathBuf>,
    client_cert: Option<Spanned<PathBuf>>,
    client_key: Option<Spanned<PathBuf>>,
    timeout_s: Option<Spanned<u64>>,
    validation: Option<Thoroughness>,
    runtime_changes: Option<RuntimeChanges>,
}

/// Parses and validates agent config text read from `path`.
pub(super) fn parse(text: &str, path: &Path) -> Result<AgentConfig, ConfigError> {
    let at = |span: Range<usize>| ConfigLocation {
        path: path.to_path_buf(),
        line_col: Some(line_col(text, span.start)),
    };
    let mut problems = Vec::new();
    let file = read_file(text, path, &at, &mut problems)?;

    let agent = noted(agent_settings(file.agent, &at), &mut problems);
    let ha = noted(ha_settings(file.ha, &at), &mut problems).unwrap_or_default();
    if !file.names_services {
        problems.push(ConfigError::NoService {
            path: path.to_path_buf(),
        });
    }
    let source = ConfigSource::File(path.to_path_buf());
    let mut services: Vec<(ServiceConfig, Range<usize>)> = Vec::new();
    for table in file.services {
        let name_span = table.name.span();
        let Some(service) = noted(service_config(table, ha, &at, &source), &mut problems) else {
            continue;
        };
        if let Some((_, first)) = services.iter().find(|(s, _)| s.service == service.service) {
            problems.push(ConfigError::DuplicateService {
                at: at(name_span),
                service: service.service,
                first_line: line_col(text, first.start).0,
            });
            continue;
        }
        services.push((service, name_span));
    }
    let (upstream, outbox) = match file.upstream {
        Some(table) => match noted(upstream_config(table, &at), &mut problems) {
            Some((upstream, outbox)) => (Some(upstream), outbox),
            None => (None, OutboxLimits::default()),
        },
        None => (None, OutboxLimits::default()),
    };
    let hooks: Vec<HookConfig> = file
        .hooks
        .into_iter()
        .filter_map(|hook| noted(hook_config(hook, &at), &mut problems))
        .collect();
    if let Some(error) = ConfigError::of_all(path, problems) {
        return Err(error);
    }
    Ok(AgentConfig {
        agent: agent.unwrap_or_default(),
        services: services.into_iter().map(|(s, _)| s).collect(),
        source,
        upstream,
        hooks,
        outbox,
    })
}

/// The value of `result`, or None with its error noted in `problems`.
fn noted<T>(result: Result<T, ConfigError>, problems: &mut Vec<ConfigError>) -> Option<T> {
    result.map_err(|error| problems.push(error)).ok()
}

/// The tables of the file, each read on its own; what is wrong in them goes to
/// `problems`. Only a file that is not TOML at all is an error at once.
fn read_file(
    text: &str,
    path: &Path,
    at: &impl Fn(Range<usize>) -> ConfigLocation,
    problems: &mut Vec<ConfigError>,
) -> Result<AgentFile, ConfigError> {
    let syntax = |error: toml::de::Error| syntax_error(text, path, &error);
    let document = DeTable::parse(text).map_err(syntax)?;
    let mut file = AgentFile::default();
    for (key, value) in document.into_inner() {
        match key.get_ref().as_ref() {
            "agent" => file.agent = table(value, problems, &syntax).unwrap_or_default(),
            "upstream" => file.upstream = table(value, problems, &syntax),
            "ha" => file.ha = table(value, problems, &syntax).unwrap_or_default(),
            "service" => {
                file.names_services = true;
                file.services = tables(value, problems, &syntax);
            }
            "hook" => file.hooks = tables(value, problems, &syntax),
            other => problems.push(ConfigError::Syntax {
                at: at(key.span()),
                message: format!("unknown table `{other}`: the agent config has {TABLES}"),
            }),
        }
    }
    Ok(file)
}

/// One table, or None with its errors noted: each key in error is noted and left
/// out, and the rest read again, so that every wrong key is said, not the first.
fn table<T: serde::de::DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    problems: &mut Vec<ConfigError>,
    syntax: &impl Fn(toml::de::Error) -> ConfigError,
) -> Option<T> {
    let span = value.span();
    let mut keys = match value.into_inner() {
        DeValue::Table(keys) => keys,
        other => {
            return T::deserialize(ValueDeserializer::from(Spanned::new(span, other)))
                .map_err(|error| problems.push(syntax(error)))
                .ok();
        }
    };
    let mut left_out: Vec<String> = Vec::new();
    loop {
        let whole = Spanned::new(span.clone(), DeValue::Table(keys.clone()));
        let error = match T::deserialize(ValueDeserializer::from(whole)) {
            Ok(table) => return left_out.is_empty().then_some(table),
            Err(error) => error,
        };
        // "missing field `name`" after a wrong `name` was left out: said already.
        let missing = error.message().strip_prefix("missing field `");
        if !missing.is_some_and(|rest| {
            left_out
                .iter()
                .any(|key| rest.starts_with(&format!("{key}`")))
        }) {
            problems.push(syntax(error.clone()));
        }
        let at = error.span().map(|span| span.start);
        let (wrong, kept): (Vec<_>, Vec<_>) = keys.into_iter().partition(|(key, value)| {
            at.is_some_and(|at| key.span().contains(&at) || value.span().contains(&at))
        });
        if wrong.is_empty() {
            return None;
        }
        left_out.extend(wrong.iter().map(|(key, _)| key.get_ref().to_string()));
        keys = kept.into_iter().collect();
    }
}

/// An array of tables (`[[service]]`), each read on its own; those with errors left out.
fn tables<T: serde::de::DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    problems: &mut Vec<ConfigError>,
    syntax: &impl Fn(toml::de::Error) -> ConfigError,
) -> Vec<T> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => items
            .into_iter()
            .filter_map(|item| table(item, problems, syntax))
            .collect(),
        other => table::<Vec<T>>(Spanned::new(span, other), problems, syntax).unwrap_or_default(),
    }
}

/// A TOML or type error at its place, in words a person reads.
fn syntax_error(text: &str, path: &Path, error: &toml::de::Error) -> ConfigError {
    let start = error.span().map(|span| span.start);
    ConfigError::Syntax {
        at: ConfigLocation {
            path: path.to_path_buf(),
            line_col: start.map(|start| line_col(text, start)),
        },
        message: plain_message(
            error.message().trim_end(),
            start.and_then(|s| key_before(text, s)),
        ),
    }
}

/// serde's "invalid type: string \"fast\", expected u64" as "settle_ms must be a whole
/// number (like 50), not the string \"fast\""; other messages as they are.
fn plain_message(message: &str, key: Option<&str>) -> String {
    let Some((found, expected)) = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.split_once(", expected "))
    else {
        return message.to_string();
    };
    let wanted = match expected {
        "u64" | "u32" | "u16" | "u8" | "usize" | "i64" | "i32" => "a whole number (like 50)",
        "a boolean" => "true or false",
        "a string" => "a string in quotes",
        "a sequence" => "a list in brackets, like [\"a\", \"b\"]",
        "a map" | "struct" => "a table",
        "path string" => "a path in quotes",
        other => other,
    };
    let found = found.replace('`', "");
    let found = [
        ("string ", "the string "),
        ("integer ", "the number "),
        ("floating point ", "the number "),
        ("boolean ", ""),
    ]
    .iter()
    .find_map(|(kind, said)| found.strip_prefix(kind).map(|rest| format!("{said}{rest}")))
    .unwrap_or(found);
    let key = key.map_or_else(|| "the value".to_string(), |key| format!("`{key}`"));
    format!("{key} must be {wanted}, not {found}")
}

/// The key of the `key = value` whose value starts at `offset`, when on its line.
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let line_start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = text.get(line_start..offset)?.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.contains(char::is_whitespace)).then_some(key)
}

fn upstream_config(
    table: UpstreamTable,
    at: &impl Fn(Range<usize>) -> ConfigLocation,
) -> Result<(UpstreamConfig, OutboxLimits), ConfigError> {
    let url = table.url.get_ref();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ConfigError::BadUrl {
            at: at(table.url.span()),
            url: url.clone(),
        });
    }
    if let (Some(cert), None) | (None, Some(cert)) = (&table.client_cert, &table.client_key) {
        return Err(ConfigError::Syntax {
            at: at(cert.span()),
            message: "[upstream] client_cert and client_key go together: set both or neither"
                .into(),
        });
    }
    let timeout = match table.timeout_s {
        Some(t) if *t.get_ref() == 0 => return Err(ConfigError::ZeroTimeout { at: at(t.span()) }),
        Some(t) => Duration::from_secs(*t.get_ref()),
        None => DEFAULT_UPSTREAM_TIMEOUT,
    };
    let mut outbox = OutboxLimits::default();
    if let Some(events) = table.max_outbox_events {
        outbox.max_events = events.max(1);
    }
    if let Some(size) = table.max_outbox_bytes {
        let span = size.span();
        outbox.max_bytes = match size.into_inner() {
            Size::Bytes(bytes) => bytes,
            Size::Text(text) => parse_size(&text).map_err(|message| ConfigError::Syntax {
                at: at(span),
                message,
            })?,
        };
    }
    let upstream = UpstreamConfig {
        url: url.clone(),
        token_file: table.token_file,
        ca_file: table.ca_file,
        client_cert: table.client_cert.map(Spanned::into_inner),
        client_key: table.client_key.map(Spanned::into_inner),
        timeout,
    };
    Ok((upstream, outbox))
}

fn hook_config(
    table: HookTable,
    at: &impl Fn(Range<usize>) -> ConfigLocation,
) -> Result<HookConfig, ConfigError> {
    if table.command.get_ref().is_empty() {
        return Err(ConfigError::Syntax {
            at: at(table.command.span()),
            message: "hook command is empty: give the program and its arguments, e.g. [\"/usr/local/bin/notify-ipam\", \"--site\", \"a\"]".into(),
        });
    }
    let timeout = match table.timeout_s {
        Some(t) if *t.get_ref() == 0 => return Err(ConfigError::ZeroTimeout { at: at(t.span()) }),
        Some(t) => Duration::from_secs(*t.get_ref()),
        None => DEFAULT_HOOK_TIMEOUT,
    };
    Ok(HookConfig {
        command: table.command.into_inner(),
        timeout,
    })
}

fn agent_settings(
    table: AgentTable,
    at: &impl Fn(Range<usize>) -> ConfigLocation,
) -> Result<AgentSettings, ConfigError> {
    let defaults = AgentSettings::default();
    let settle = match table.settle_ms {
        Some(ms) => {
            let settle = Duration::from_millis(*ms.get_ref());
            if settle > MAX_SETTLE {
                return Err(ConfigError::SettleTooLong {
                    at: at(ms.span()),
                    settle_ms: *ms.get_ref(),
                });
            }
            settle
        }
        None => defaults.settle,
    };
    let check_interval = match table.check_interval_s {
        Some(0) => None,
        Some(seconds) => Some(Duration::from_secs(seconds)),
        None => defaults.check_interval,
    };
    let metrics_listen = match table.metrics_listen {
        Some(text) => Some(text.get_ref().parse().map_err(|_| ConfigError::Syntax {
            at: at(text.span()),
            message: format!(
                "[agent] metrics_listen \"{}\" is not an address and port, e.g. \"127.0.0.1:9547\"",
                text.get_ref()
            ),
        })?),
        None => None,
    };
    Ok(AgentSettings {
        state_dir: table.state_dir.unwrap_or(defaults.state_dir),
        settle,
        check_interval,
        admin_socket: table.admin_socket.unwrap_or(defaults.admin_socket),
        admin_group: table.admin_group,
        metrics_listen,
        log_format: table.log_format.unwrap_or_default(),
    })
}

fn ha_settings(
    table: HaTable,
    at: &impl Fn(Range<usize>) -> ConfigLocation,
) -> Result<HaSettings, ConfigError> {
    let defaults = HaSettings::default();
    let seconds = |value: Option<Spanned<u64>>, default: Duration, key: &str| match value {
        Some(s) if *s.get_ref() == 0 => Err(ConfigError::Syntax {
            at: at(s.span()),
            message: format!("[ha] {key} must be at least 1 (seconds)"),
        }),
        Some(s) => Ok(Duration::from_secs(*s.get_ref())),
        None => Ok(default),
    };
    let follow_span = table.follow_timeout_s.as_ref().map(Spanned::span);
    let follow_timeout = seconds(
        table.follow_timeout_s,
        defaults.follow_timeout,
        "follow_timeout_s",
    )?;
    if let Some(span) = follow_span.filter(|_| follow_timeout > MAX_HA_FOLLOW) {
        return Err(ConfigError::Syntax {
            at: at(span),
            message: format!(
                "[ha] follow_timeout_s is at most {} s: the agent does nothing else while it follows a reload, and systemd's watchdog expects to hear from it",
                MAX_HA_FOLLOW.as_secs()
            ),
        });
    }
    Ok(HaSettings {
        secondary_edits: table.secondary_edits.unwrap_or(defaults.secondary_edits),
        delay: table.delay_ms.map_or(defaults.delay, Duration::from_millis),
        max_hold: seconds(table.max_hold_s, defaults.max_hold, "max_hold_s")?,
        after_max_hold: table.after_max_hold.unwrap_or(defaults.after_max_hold),
        follow_timeout,
    })
}

fn service_config(
    table: ServiceTable,
    ha: HaSettings,
    at: &impl Fn(Range<usize>) -> ConfigLocation,
    source: &ConfigSource,
) -> Result<ServiceConfig, ConfigError> {
    let service: Service =
        table
            .name
            .get_ref()
            .parse()
            .map_err(|_| ConfigError::UnknownService {
                at: at(table.name.span()),
                name: table.name.get_ref().clone(),
            })?;
    if let (Some(_), Some(url)) = (&table.control_socket, &table.control_url) {
        return Err(ConfigError::SocketAndUrl {
            at: at(url.span()),
            service,
        });
    }
    if let Some(url) = &table.control_url {
        let text = url.get_ref();
        if !(text.starts_with("http://") || text.starts_with("https://")) {
            return Err(ConfigError::BadUrl {
                at: at(url.span()),
                url: text.clone(),
            });
        }
    }
    both_or_neither(
        (&table.user, "user"),
        (&table.password_file, "password_file"),
        service,
        at,
    )?;
    both_or_neither(
        (&table.client_cert, "client_cert"),
        (&table.client_key, "client_key"),
        service,
        at,
    )?;
    let timeout = match &table.timeout_s {
        Some(seconds) if *seconds.get_ref() == 0 => {
            return Err(ConfigError::ZeroTimeout {
                at: at(seconds.span()),
            });
        }
        Some(seconds) => Duration::from_secs(*seconds.get_ref()),
        None => DEFAULT_TIMEOUT,
    };
    Ok(ServiceConfig {
        service,
        config_file: table
            .config_file
            .unwrap_or_else(|| PathBuf::from(service.default_config_file())),
        control_socket: table.control_socket.map(Spanned::into_inner),
        control_url: table.control_url.map(Spanned::into_inner),
        http: HttpSettings {
            user: table.user.map(Spanned::into_inner),
            password_file: table.password_file.map(Spanned::into_inner),
            ca_file: table.ca_file,
            client_cert: table.client_cert.map(Spanned::into_inner),
            client_key: table.client_key.map(Spanned::into_inner),
        },
        validator: table.validator,
        include_base: table.include_base,
        timeout,
        validation: table.validation.unwrap_or_default(),
        runtime_changes: table.runtime_changes.unwrap_or_default(),
        ha,
        agent_config: source.clone(),
    })
}

/// Refuses one option of a pair without the other, pointing at the one given.
fn both_or_neither<A, B>(
    (a, a_name): (&Option<Spanned<A>>, &'static str),
    (b, b_name): (&Option<Spanned<B>>, &'static str),
    service: Service,
    at: &impl Fn(Range<usize>) -> ConfigLocation,
) -> Result<(), ConfigError> {
    let (span, given, missing) = match (a, b) {
        (Some(a), None) => (a.span(), a_name, b_name),
        (None, Some(b)) => (b.span(), b_name, a_name),
        _ => return Ok(()),
    };
    Err(ConfigError::HalfPair {
        at: at(span),
        service,
        given,
        missing,
    })
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::line_col;

    #[test]
    fn line_col_counts_from_one_in_characters() {
        let text = "ab\nçd = 1\n";
        for (offset, expected) in [
            (0, (1, 1)),
            (1, (1, 2)),
            (3, (2, 1)),
            (5, (2, 2)),
            (99, (3, 1)),
        ] {
            assert_eq!(line_col(text, offset), expected, "offset {offset}");
        }
    }
}
