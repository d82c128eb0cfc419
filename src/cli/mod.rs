//! The command line: names here are a contract with scripts and packaging.

mod ops;

use crate::agent::commands;
use crate::agent::config::{AgentConfig, LogFormat};
use crate::agent::daemon::{Daemon, DaemonError, DaemonIo};
use crate::agent::lock::LockError;
use crate::agent::signals::Signals;
use crate::dialect::{self, Style};
use crate::kea::{
    Command, ControlChannel, HttpControl, HttpOptions, KeaError, Service, UnixControl,
};
use clap::{Args, Parser, Subcommand};
use serde_json::value::RawValue;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Exit code when Kea answered with a result other than 0.
pub const EXIT_KEA_REFUSED: u8 = 1;
/// Exit code when Kea could not be reached or its answer not read.
pub const EXIT_UNREACHABLE: u8 = 2;
/// Exit code when the input (file, arguments) is bad, a usage error included.
pub const EXIT_BAD_INPUT: u8 = 3;
/// Exit code when the agent config is bad, or the agent cannot start as it is
/// configured: LSB's 6, which systemd shows as `status=6/NOTCONFIGURED` (and,
/// by the unit's RestartPreventExitStatus, does not restart into).
pub const EXIT_NOT_CONFIGURED: u8 = 6;

/// The exit codes, for the top-level `--help`.
const EXIT_CODES_HELP: &str = "\
Exit status (every command; each command's --help says which apply):
  0  all is well (applied, unchanged, in sync; Kea's result 0)
  1  Kea refused (a rejected file, a command whose result is not 0), or check found problems
  2  unreachable: Kea or the running agent did not answer, or another agent holds the state dir
  3  bad input: a usage error, a file that cannot be read or does not parse
  6  bad agent config (systemd shows status=6/NOTCONFIGURED and does not restart into it)";

/// Keeps ISC Kea's in-memory config in step with its config files: every
/// edit is validated as Kea would, reloaded, verified and reported.
#[derive(Debug, Parser)]
#[command(
    name = "kea-sync-agent",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
    /// How log lines go to stderr: text (journald reads it) or json (one
    /// object per line, for log shippers). Default: [agent] log_format of
    /// `run`'s agent config, else text.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

impl Cli {
    /// The log format: `--log-format`, else the agent config's (for `run`;
    /// a config that does not load is reported later, by `run` itself).
    pub fn log_format(&self) -> LogFormat {
        if let Some(format) = self.log_format {
            return format;
        }
        match &self.command {
            CliCommand::Run(args) => AgentConfig::from_cli(args.config.as_deref())
                .map(|config| config.agent.log_format)
                .unwrap_or_default(),
            _ => LogFormat::Text,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Print a Kea config file as the JSON Kea itself reads from it: comments
    /// removed, trailing commas dropped, <?include?> files spliced in. Exit 0
    /// when it expands, 3 when a file cannot be read or does not parse (the
    /// error names file, line and column).
    ///
    /// Example: kea-sync-agent expand /etc/kea/kea-dhcp4.conf --include-base /
    Expand(ExpandArgs),
    /// Send one command to Kea and print its reply as JSON; exit 0 when Kea's
    /// result is 0, 1 when it is not, 2 when Kea cannot be reached, 3 for bad
    /// arguments (a usage error, --arguments that is not JSON, an unreadable
    /// file).
    ///
    /// Examples:
    ///   kea-sync-agent kea config-get --socket /run/kea/kea4-ctrl-socket
    ///   kea-sync-agent kea config-reload --url http://127.0.0.1:8000 --service dhcp4 \
    ///       --user admin --password-file /etc/kea/kea-api-password
    #[command(verbatim_doc_comment)]
    Kea(KeaArgs),
    /// The daemon: watch Kea's config files (and every include) and turn each
    /// real edit into a validated, verified config-reload. SIGHUP re-reads the
    /// agent config; SIGTERM/SIGINT finish the apply in flight and exit.
    ///
    /// Without --config it reads /etc/kea-sync-agent/agent.toml, or, when that
    /// does not exist, manages every Kea service whose stock config file exists
    /// in /etc/kea, with the control socket each file names.
    ///
    /// One agent per state dir: a second `run` on the same state dir exits at
    /// once with status 2, naming the pid that holds it. A bad agent config,
    /// or one it cannot start as (state dir, token file, watch), exits 6.
    Run(AgentArgs),
    /// Check the agent config, each Kea config file and each control channel
    /// (reachable, permitted, Kea's version), like `nginx -t`; it changes
    /// nothing (no state dir is made). Exit 0 when all is well, 1 when a check
    /// failed, 6 when the agent config is bad.
    Check(AgentArgs),
    /// Run the agent's decision once, now, and print one JSON event per
    /// service. Exit 0 applied/unchanged/in-sync, 1 rejected, 2 unreachable
    /// (or a daemon holds the state dir and its admin socket does not
    /// answer), 3 bad arguments, 6 bad agent config. While a daemon runs, the check runs
    /// inside it (through its admin socket).
    Apply(ApplyArgs),
    /// Ask the running agent what it thinks: per service the files, what Kea
    /// runs, the last change, what waits for delivery. Exit 2 when no agent
    /// answers on the admin socket.
    ///
    /// Examples:
    ///   kea-sync-agent status
    ///   kea-sync-agent status --json | jq '.services[].last_event.outcome'
    #[command(verbatim_doc_comment)]
    Status(ops::StatusArgs),
    /// List the events waiting for delivery and the dead ones a receiver
    /// refused (service, sequence, kind, age, size, attempts, last error);
    /// `outbox retry` queues dead ones again. Works without a daemon too
    /// (from the state dir; attempts are then unknown).
    Outbox(ops::OutboxArgs),
}

/// Arguments of `run` and `check`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Agent config (TOML). Default: /etc/kea-sync-agent/agent.toml, else
    /// discovery of /etc/kea/kea-dhcp4.conf, kea-dhcp6.conf, kea-dhcp-ddns.conf.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Arguments of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Only this service: dhcp4, dhcp6 or d2.
    #[arg(long, value_name = "NAME")]
    pub service: Option<Service>,
}

/// Arguments of `expand`.
#[derive(Debug, Args)]
pub struct ExpandArgs {
    /// The Kea config file (kea-dhcp4.conf, kea-dhcp6.conf, ...).
    pub file: PathBuf,
    /// Directory that relative <?include?> paths resolve against. Kea uses
    /// its own working directory (/ under systemd), not the file's directory.
    /// Default: the current directory.
    #[arg(long, value_name = "DIR")]
    pub include_base: Option<PathBuf>,
    /// One line of JSON instead of indented output.
    #[arg(long)]
    pub compact: bool,
    /// Also print the list of files read (main file and includes) to stderr.
    #[arg(long)]
    pub list_files: bool,
}

/// Where Kea listens and how to authenticate.
#[derive(Debug, Args)]
pub struct ChannelArgs {
    /// Kea's unix control socket (the `socket-name` of its control-socket).
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "url",
        conflicts_with = "url"
    )]
    pub socket: Option<PathBuf>,
    /// kea-ctrl-agent (e.g. http://127.0.0.1:8000) or a Kea 2.7+/3.x HTTP(S)
    /// control socket.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Daemon behind kea-ctrl-agent: dhcp4, dhcp6 or d2. Leave out for Kea
    /// 3.x direct sockets (and to address kea-ctrl-agent itself).
    #[arg(long, value_name = "NAME", requires = "url", conflicts_with = "socket")]
    pub service: Option<Service>,
    /// Basic-auth user (with --password-file).
    #[arg(long, value_name = "U", requires = "url", conflicts_with = "socket")]
    pub user: Option<String>,
    /// File holding the basic-auth password (never pass secrets on the command line).
    #[arg(long, value_name = "F", requires = "user")]
    pub password_file: Option<PathBuf>,
    /// PEM CA bundle that signed Kea's HTTPS certificate.
    #[arg(long, value_name = "F", requires = "url", conflicts_with = "socket")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for Kea's cert-required (with --key).
    #[arg(long, value_name = "F", requires = "key", conflicts_with = "socket")]
    pub cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, value_name = "F", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Seconds one exchange may take; reloads of large configs take seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
}

impl ChannelArgs {
    /// Opens the control channel these arguments describe.
    pub fn channel(&self) -> Result<ControlChannel, KeaError> {
        let timeout = Duration::from_secs(self.timeout.max(1));
        match (&self.socket, &self.url) {
            (Some(socket), _) => Ok(ControlChannel::Unix(UnixControl::new(socket, timeout))),
            (None, Some(url)) => {
                let options = HttpOptions {
                    service: self.service,
                    user: self.user.clone(),
                    password_file: self.password_file.clone(),
                    password: None,
                    ca_file: self.ca_file.clone(),
                    client_cert: self.cert.clone(),
                    client_key: self.key.clone(),
                    timeout,
                };
                Ok(ControlChannel::Http(HttpControl::new(url, &options)?))
            }
            // clap's group makes one of them required.
            (None, None) => Ok(ControlChannel::Unix(UnixControl::new(
                "/run/kea/kea4-ctrl-socket",
                timeout,
            ))),
        }
    }
}

/// Arguments of `kea`.
#[derive(Debug, Args)]
pub struct KeaArgs {
    /// Kea command: version-get, status-get, list-commands, config-get,
    /// config-hash-get, config-test, config-reload, config-write, or any other.
    pub command: String,
    #[command(flatten)]
    pub channel: ChannelArgs,
    /// The command's arguments as JSON, or @FILE to read them from a file.
    #[arg(long, value_name = "JSON")]
    pub arguments: Option<String>,
    /// Indent the printed reply.
    #[arg(long)]
    pub pretty: bool,
}

/// Runs one parsed command line.
pub async fn execute(cli: Cli) -> ExitCode {
    match cli.command {
        CliCommand::Expand(args) => expand(&args),
        CliCommand::Kea(args) => kea(&args).await,
        CliCommand::Run(args) => run(&args).await,
        CliCommand::Check(args) => check(&args).await,
        CliCommand::Apply(args) => apply(&args).await,
        CliCommand::Status(args) => ops::status(&args).await,
        CliCommand::Outbox(args) => ops::outbox(&args).await,
    }
}

async fn run(args: &AgentArgs) -> ExitCode {
    // Signal handlers first, so a SIGTERM during start-up is not lost.
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let started = AgentConfig::from_cli(args.config.as_deref())
        .map_err(DaemonError::from)
        .and_then(|config| {
            let io = DaemonIo::open(&config)?;
            Daemon::new(config, args.config.clone(), io)
        });
    match started {
        Ok(daemon) => {
            daemon.run(signals.into_triggers()).await;
            ExitCode::SUCCESS
        }
        Err(DaemonError::Lock(held @ LockError::Held { .. })) => {
            eprintln!(
                "error: {held}; stop that one first (systemctl stop kea-sync-agent), or give this one its own [agent] state_dir"
            );
            ExitCode::from(EXIT_UNREACHABLE)
        }
        Err(error) => {
            // Under systemd these are the journal's lines naming file and line.
            eprintln!("error: {error}");
            ExitCode::from(EXIT_NOT_CONFIGURED)
        }
    }
}

async fn check(args: &AgentArgs) -> ExitCode {
    let config = match AgentConfig::from_cli(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            println!("FAIL agent config: {error}");
            println!("verdict: the agent config is broken");
            return ExitCode::from(EXIT_NOT_CONFIGURED);
        }
    };
    let findings = commands::check(&config).await;
    for finding in &findings {
        println!("{finding}");
    }
    let failed = findings.iter().filter(|f| !f.ok).count();
    if failed == 0 {
        println!("verdict: all is well");
        ExitCode::SUCCESS
    } else {
        println!("verdict: {failed} problem(s)");
        ExitCode::FAILURE
    }
}

async fn apply(args: &ApplyArgs) -> ExitCode {
    let config = match AgentConfig::from_cli(args.agent.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_NOT_CONFIGURED);
        }
    };
    if let Some(service) = args.service
        && config.service(service).is_none()
    {
        eprintln!(
            "error: service {service} is not configured in {}",
            config.source
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let events = match commands::apply(&config, args.service).await {
        Ok(events) => events,
        Err(held) => return apply_through_daemon(&config, args.service, &held.to_string()).await,
    };
    let mut out = String::new();
    for event in &events {
        out.push_str(&event.to_json_line());
        out.push('\n');
    }
    let printed = print_json(out.trim_end());
    if printed != ExitCode::SUCCESS {
        return printed;
    }
    ExitCode::from(commands::apply_exit_code(&events))
}

/// `apply` while a daemon holds the state dir: through its admin socket.
async fn apply_through_daemon(config: &AgentConfig, only: Option<Service>, held: &str) -> ExitCode {
    match ops::apply_through_daemon(config, only).await {
        Ok((events, notes)) => {
            for note in &notes {
                eprintln!("{note}");
            }
            let lines: Vec<String> = events.iter().map(|e| e.to_string()).collect();
            let printed = print_json(&lines.join("\n"));
            if printed != ExitCode::SUCCESS {
                return printed;
            }
            ExitCode::from(events.iter().map(ops::exit_code_of).max().unwrap_or(0))
        }
        Err(error) => {
            eprintln!(
                "error: {held}, and {error}. A running daemon applies every edit itself; to have it look at every service now, reload it (systemctl reload kea-sync-agent, or send it SIGHUP)"
            );
            ExitCode::from(EXIT_UNREACHABLE)
        }
    }
}

fn expand(args: &ExpandArgs) -> ExitCode {
    let base = match &args.include_base {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
    };
    let style = if args.compact {
        Style::Compact
    } else {
        Style::Pretty
    };
    match dialect::expand_file(&args.file, &base, style) {
        Ok(expanded) => {
            for warning in &expanded.warnings {
                tracing::warn!("{warning}");
            }
            if args.list_files {
                for file in &expanded.files {
                    eprintln!("{}", file.display());
                }
            }
            print_json(&expanded.json)
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

async fn kea(args: &KeaArgs) -> ExitCode {
    let arguments = match args.arguments.as_deref().map(read_arguments).transpose() {
        Ok(arguments) => arguments,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let channel = match args.channel.channel() {
        Ok(channel) => channel,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let command = Command::from_name(&args.command, arguments);
    match channel.send(&command).await {
        Ok(reply) => {
            let json = reply.to_json();
            let printed = if args.pretty {
                match serde_json::from_str::<serde_json::Value>(&json)
                    .and_then(|v| serde_json::to_string_pretty(&v))
                {
                    Ok(pretty) => print_json(&pretty),
                    Err(_) => print_json(&json),
                }
            } else {
                print_json(&json)
            };
            if printed != ExitCode::SUCCESS {
                printed
            } else if reply.outcome.code() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_KEA_REFUSED)
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
    }
}

/// `--arguments` text: inline JSON or @FILE.
fn read_arguments(text: &str) -> Result<Box<RawValue>, String> {
    let (source, json) = match text.strip_prefix('@') {
        Some(file) => (
            file.to_string(),
            std::fs::read_to_string(Path::new(file))
                .map_err(|e| format!("cannot read --arguments file {file}: {e}"))?,
        ),
        None => ("--arguments".to_string(), text.to_string()),
    };
    RawValue::from_string(json).map_err(|e| format!("{source} is not valid JSON: {e}"))
}

/// Prints to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn print_json(json: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out
        .write_all(json.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn socket_and_url_exclude_each_other() {
        let both = Cli::try_parse_from([
            "kea-sync-agent",
            "kea",
            "version-get",
            "--socket",
            "/s",
            "--url",
            "http://x",
        ]);
        assert!(both.is_err());
        let neither = Cli::try_parse_from(["kea-sync-agent", "kea", "version-get"]);
        assert!(neither.is_err());
        let url = Cli::try_parse_from([
            "kea-sync-agent",
            "kea",
            "config-get",
            "--url",
            "http://x",
            "--service",
            "dhcp6",
        ]);
        assert!(url.is_ok());
    }

    #[test]
    fn http_only_options_are_refused_beside_a_unix_socket() {
        for (option, value) in [
            ("--service", "dhcp4"),
            ("--user", "admin"),
            ("--ca-file", "/ca.pem"),
        ] {
            let parsed = Cli::try_parse_from([
                "kea-sync-agent",
                "kea",
                "config-get",
                "--socket",
                "/s",
                option,
                value,
            ]);
            let error = parsed.expect_err(option).to_string();
            assert!(error.contains("cannot be used with"), "{option}: {error}");
        }
    }

    #[test]
    fn arguments_accept_inline_json_and_refuse_garbage() {
        assert!(read_arguments(r#"{"filename": "/tmp/x"}"#).is_ok());
        assert!(read_arguments("{not json").is_err());
        assert!(read_arguments("@/nonexistent/args.json").is_err());
    }
}
