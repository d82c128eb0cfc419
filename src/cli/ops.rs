//! The commands that ask the running agent (`status`, `outbox`, and
//! `apply` beside a daemon) over its admin socket; `outbox` and `outbox
//! retry` also work on the state dir alone when no daemon runs.

use super::{EXIT_BAD_INPUT, EXIT_NOT_CONFIGURED, EXIT_UNREACHABLE, print_json};
use crate::agent::admin::client::{self, AdminError};
use crate::agent::admin::view::{self, OutboxNow};
use crate::agent::admin::{Applied, DEFAULT_ADMIN_SOCKET};
use crate::agent::config::AgentConfig;
use crate::agent::lock::{LockError, StateDirLock};
use crate::event::wire::Identity;
use crate::kea::Service;
use crate::upstream::OutboxHandle;
use crate::upstream::deliveries::Attempts;
use crate::upstream::outbox::{self, Revive};
use clap::Args;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// How long a read of the admin API may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// An apply runs a whole check (a large config: minutes; an HA hold).
const APPLY_TIMEOUT: Duration = Duration::from_secs(900);

/// Where to find the running agent.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The agent's admin socket. Default: [agent] admin_socket of the agent
    /// config, else /run/kea-sync-agent/admin.sock.
    #[arg(long, value_name = "PATH")]
    pub admin_socket: Option<PathBuf>,
    /// Agent config (TOML), for its admin socket and state dir. Default:
    /// /etc/kea-sync-agent/agent.toml, else discovery in /etc/kea.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The daemon's answer as JSON (GET /v1/status) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `outbox`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct OutboxArgs {
    #[command(subcommand)]
    pub action: Option<OutboxAction>,
    #[command(flatten)]
    pub admin: AdminArgs,
    /// As JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What `outbox` does besides listing.
#[derive(Debug, clap::Subcommand)]
pub enum OutboxAction {
    /// Queue dead events (refused by the receiver) again, in sequence order,
    /// each with its own id, so the receiver stores it once.
    ///
    /// Examples:
    ///   kea-sync-agent outbox retry --all
    ///   kea-sync-agent outbox retry 01JD3W5S8Q7M2X4K6N9P0R1T2V
    #[command(verbatim_doc_comment)]
    Retry(RetryArgs),
}

/// Arguments of `outbox retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Every dead event.
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// The ids of the dead events to queue again (see `kea-sync-agent outbox`).
    #[arg(value_name = "ID", required_unless_present = "all")]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

impl AdminArgs {
    /// The agent config, when it loads (errors are said by the caller).
    fn config(&self) -> Result<AgentConfig, String> {
        AgentConfig::from_cli(self.config.as_deref()).map_err(|e| e.to_string())
    }

    /// The admin socket: given, else the agent config's, else the default.
    fn socket(&self, config: Option<&AgentConfig>) -> PathBuf {
        self.admin_socket
            .clone()
            .or_else(|| config.map(|c| c.agent.admin_socket.clone()))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ADMIN_SOCKET))
    }
}

/// GETs `path` from the agent and parses its JSON.
async fn get(socket: &Path, path: &str) -> Result<Value, AdminError> {
    let (_, body) = client::request(socket, "GET", path, None, ASK_TIMEOUT).await?;
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// `kea-sync-agent status`.
pub async fn status(args: &StatusArgs) -> ExitCode {
    let config = args.admin.config().ok();
    let socket = args.admin.socket(config.as_ref());
    match get(&socket, "/v1/status").await {
        Ok(status) if args.json => print_json(&pretty(&status)),
        Ok(status) => print_text(&view::status_table(&status)),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
    }
}

/// `kea-sync-agent outbox` and `outbox retry`.
pub async fn outbox(args: &OutboxArgs) -> ExitCode {
    match &args.action {
        Some(OutboxAction::Retry(retry_args)) => retry(retry_args).await,
        None => list(args).await,
    }
}

async fn list(args: &OutboxArgs) -> ExitCode {
    let config = args.admin.config();
    let socket = args.admin.socket(config.as_ref().ok());
    let listed = match get(&socket, "/v1/outbox").await {
        Ok(listed) => listed,
        Err(AdminError::NotRunning { .. }) => {
            // No daemon: the files say all but the attempts.
            let config = match config {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(EXIT_NOT_CONFIGURED);
                }
            };
            match outbox::list_state_dir(&config.agent.state_dir) {
                Ok((queued, dead)) => view::outbox(
                    &OutboxNow {
                        queued: &queued,
                        dead: &dead,
                        dropped: 0,
                    },
                    |_| Attempts::default(),
                    SystemTime::now(),
                ),
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(EXIT_UNREACHABLE);
                }
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    if args.json {
        print_json(&pretty(&listed))
    } else {
        print_text(&view::outbox_table(&listed))
    }
}

async fn retry(args: &RetryArgs) -> ExitCode {
    let which = if args.all {
        Revive::All
    } else {
        Revive::Ids(args.ids.clone())
    };
    let config = args.admin.config();
    let socket = args.admin.socket(config.as_ref().ok());
    let body = match &which {
        Revive::All => json!({"all": true}),
        Revive::Ids(ids) => json!({"ids": ids}),
    };
    let asked = client::request(
        &socket,
        "POST",
        "/v1/outbox/retry",
        Some(body.to_string().into_bytes()),
        ASK_TIMEOUT,
    )
    .await;
    match asked {
        Ok((200, body)) => {
            let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            said_queued(answer["queued"].as_array().map_or(0, Vec::len))
        }
        Ok((_, body)) => {
            let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            eprintln!(
                "error: {}",
                answer["error"].as_str().unwrap_or("the agent refused")
            );
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(AdminError::NotRunning { .. }) => match config {
            Ok(config) => retry_on_disk(&config, &which),
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(EXIT_NOT_CONFIGURED)
            }
        },
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
    }
}

/// No daemon answers: move the files under the state dir's lock; the next
/// `run` delivers them.
fn retry_on_disk(config: &AgentConfig, which: &Revive) -> ExitCode {
    let state_dir = &config.agent.state_dir;
    let lock = match StateDirLock::acquire(state_dir, "outbox retry") {
        Ok(lock) => lock,
        Err(held @ LockError::Held { .. }) => {
            eprintln!(
                "error: {held}, and no admin socket answers: retry through that agent's --admin-socket"
            );
            return ExitCode::from(EXIT_UNREACHABLE);
        }
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let revived = OutboxHandle::open(state_dir, config.outbox, Identity::of_this_host())
        .map_err(|e| e.to_string())
        .and_then(|outbox| outbox.revive(which).map_err(|e| e.to_string()));
    drop(lock);
    match revived {
        Ok(revived) => {
            let code = said_queued(revived.len());
            if !revived.is_empty() {
                eprintln!(
                    "no agent runs on {}: they go out when it starts",
                    state_dir.display()
                );
            }
            code
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn said_queued(count: usize) -> ExitCode {
    if count == 0 {
        println!("no dead events: nothing to queue again");
    } else {
        println!("queued {count} dead event(s) again, in sequence order");
    }
    ExitCode::SUCCESS
}

/// `apply` while a daemon holds the state dir: each service's check runs
/// inside the daemon; its events, or why there are none.
pub async fn apply_through_daemon(
    config: &AgentConfig,
    only: Option<Service>,
) -> Result<(Vec<Value>, Vec<String>), AdminError> {
    let socket = &config.agent.admin_socket;
    let mut events = Vec::new();
    let mut notes = Vec::new();
    for service in config.services.iter().map(|s| s.service) {
        if only.is_some_and(|only| only != service) {
            continue;
        }
        let path = format!("/v1/apply?service={service}");
        let (status, body) = client::request(socket, "POST", &path, None, APPLY_TIMEOUT).await?;
        match serde_json::from_slice::<Applied>(&body) {
            Ok(applied) if status == 200 => {
                events.extend(applied.events);
                notes.extend(applied.note.map(|note| format!("{service}: {note}")));
            }
            _ => notes.push(format!(
                "{service}: the daemon answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )),
        }
    }
    Ok((events, notes))
}

/// `apply`'s exit code for an event printed as JSON.
pub fn exit_code_of(event: &Value) -> u8 {
    match event["outcome"].as_str() {
        Some("rejected") => 1,
        Some("unreachable") => 2,
        _ => 0,
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn print_text(text: &str) -> ExitCode {
    print_json(text.trim_end())
}
