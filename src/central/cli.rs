//! kea-sync-central's command line and its `serve` command.

use super::dburl::{DbUrl, DbUrlError};
use super::http::{self, ConnectionLimits};
use super::ingest::Central;
use super::nofile;
use super::store::{Store, StoreError};
use super::tls::{TlsError, load_acceptor};
use super::tokens::{Tokens, TokensError};
use super::users::{self, Users, UsersError};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The reference central for kea-sync-agent: stores every config version of
/// every Kea server in SQLite or PostgreSQL and shows the fleet.
#[derive(Debug, Parser)]
#[command(name = "kea-sync-central", version)]
pub struct CentralCli {
    #[command(subcommand)]
    pub command: CentralCommand,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum CentralCommand {
    /// Receive agents' events (POST /v1/events) and serve the read API and web page.
    Serve(ServeArgs),
    /// Manage the people who may read (--users-file).
    #[command(subcommand)]
    User(UserCommand),
}

/// `kea-sync-central user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a reader, or change a reader's password: prompts for it (twice at a
    /// terminal; else one line of standard input) and writes NAME:BCRYPT to
    /// the users file (created mode 0600), the format of `htpasswd -nbB`.
    ///
    /// Example: kea-sync-central user add alice --users-file /etc/kea-sync-central/users
    Add(UserAddArgs),
}

/// `kea-sync-central user add`.
#[derive(Debug, Clone, Args)]
pub struct UserAddArgs {
    /// The reader's name (no colon).
    pub name: String,
    /// The users file to write.
    #[arg(long, value_name = "FILE")]
    pub users_file: PathBuf,
}

/// `kea-sync-central serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The database: sqlite:///path/central.db, or postgres://user@host:port/db
    /// (add ?host=/socket/dir for a unix socket, or
    /// ?sslmode=verify-full&sslrootcert=/path/ca.pem for TLS). Migrations run
    /// at start, under an advisory lock on PostgreSQL (centrals may share it).
    #[arg(
        long,
        env = "KEA_SYNC_CENTRAL_DB",
        default_value = "sqlite://./central.db"
    )]
    pub db: String,
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Agents allowed to post, one `NAME TOKEN` per line (# comments). NAME
    /// becomes the server's name. Without it, anyone may post.
    #[arg(long)]
    pub tokens_file: Option<PathBuf>,
    /// People allowed to read (the page and every GET but /healthz): one
    /// NAME:HASH line each, bcrypt as `htpasswd -nbB` writes it, or
    /// `kea-sync-central user add`. Without it, reads are open, which the
    /// central allows only when listening on a loopback address.
    #[arg(long, value_name = "FILE")]
    pub users_file: Option<PathBuf>,
    /// false: secrets in configs (passwords, TSIG secrets) are replaced by a
    /// marker before they are stored. Reads never show them either way.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub store_secrets: bool,
    /// Largest event body accepted, in bytes, before and after gzip (413 above).
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// PostgreSQL connections kept open (ignored for SQLite).
    #[arg(long, default_value_t = 8)]
    pub db_connections: usize,
    /// A client must finish its TLS handshake, and then each request's head
    /// (request line and headers), within this (from the accept; for a later
    /// request on the connection, from its first byte); else the connection is
    /// closed without an answer. Bounds clients that connect and stall or drip
    /// their headers ("slow loris"). E.g. 10s, 1m.
    #[arg(long, default_value = "10s", value_parser = positive_duration, value_name = "DURATION")]
    pub header_timeout: Duration,
    /// The whole body of POST /v1/events must arrive within this of its
    /// headers, else 408 and the connection is closed; nothing is stored. The
    /// default fits the largest body (--max-body-bytes) at about 1 MB/s.
    #[arg(long, default_value = "60s", value_parser = positive_duration, value_name = "DURATION")]
    pub body_timeout: Duration,
    /// A kept-alive connection with no request in flight (or whose answer
    /// the client stopped reading) is closed after this. Agents reconnect.
    #[arg(long, default_value = "60s", value_parser = positive_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,
    /// Connections open at once, from everyone. One more is answered 503
    /// with Retry-After (plain HTTP) or closed (TLS). Each is a file
    /// descriptor: the open-files limit is raised to fit, or the cap lowered
    /// with a warning where the hard limit is lower.
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = at_least_one())]
    pub max_connections: usize,
    /// Connections open at once from one IP address (an agent needs one or
    /// two). Behind a load balancer or reverse proxy every client has its
    /// address: raise this to about --max-connections there.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = at_least_one())]
    pub max_connections_per_peer: usize,
}

/// A humantime duration above zero (`10s`, `1m30s`).
fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be more than zero".into()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(format!("{error} (e.g. 10s, 1m30s)")),
    }
}

fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

/// Why the central could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error(transparent)]
    DbUrl(#[from] DbUrlError),
    #[error(transparent)]
    Tokens(#[from] TokensError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Users(#[from] UsersError),
    #[error(
        "refusing to serve the read API and the page to anyone on {addr}: give --users-file (kea-sync-central user add NAME --users-file FILE makes one), or listen on a loopback address"
    )]
    OpenReads { addr: String },
    #[error("{0}")]
    Password(String),
}

/// Exit status of a start that a restart cannot fix (a bad option, file or
/// address in the configuration): LSB's "program is not configured", which
/// systemd shows as NOTCONFIGURED and the unit does not restart.
pub const EXIT_NOT_CONFIGURED: i32 = 6;

impl CentralError {
    /// 6 for configuration errors; 1 for what may pass (a database that is
    /// down, an address in use), so systemd retries those.
    pub fn exit_code(&self) -> i32 {
        match self {
            CentralError::DbUrl(_)
            | CentralError::Tokens(_)
            | CentralError::Tls(_)
            | CentralError::Users(_)
            | CentralError::OpenReads { .. }
            | CentralError::Store(StoreError::SchemaTooNew { .. }) => EXIT_NOT_CONFIGURED,
            _ => 1,
        }
    }
}

/// Opens the store, binds `--listen` and serves until `shutdown` completes.
pub async fn serve(
    args: ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CentralError> {
    let url = DbUrl::parse(&args.db)?;
    let tokens = match &args.tokens_file {
        Some(path) => {
            let tokens = Tokens::load(path)?;
            tracing::info!(
                "{} agent tokens loaded from {}",
                tokens.len(),
                path.display()
            );
            Some(tokens)
        }
        None => {
            tracing::warn!(
                "NO AUTHENTICATION: --tokens-file not given, so anyone who reaches {} may post events; \
                 servers are named by the agent.host they send",
                args.listen
            );
            None
        }
    };
    let users = match &args.users_file {
        Some(path) => {
            let users = Users::load(path)?;
            tracing::info!("{} readers loaded from {}", users.len(), path.display());
            Some(users)
        }
        None => None,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(load_acceptor(cert, key)?),
        _ => None,
    };
    let store = Store::open(&url, args.db_connections).await?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|source| CentralError::Bind {
            addr: args.listen.clone(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_or(args.listen.clone(), |a| a.to_string());
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
    if users.is_none() {
        if !loopback {
            return Err(CentralError::OpenReads { addr });
        }
        tracing::warn!(
            "NO READ AUTHENTICATION: --users-file not given, so anyone who reaches {addr} (loopback only) may read every config"
        );
    }
    if !args.store_secrets {
        tracing::info!(
            "--store-secrets false: secrets in configs are redacted before they are stored"
        );
    }
    let headroom =
        nofile::HEADROOM.saturating_add(u64::try_from(args.db_connections).unwrap_or(u64::MAX));
    let limits = ConnectionLimits {
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
        max_connections: nofile::fit(args.max_connections, headroom),
        max_connections_per_peer: args.max_connections_per_peer,
    };
    tracing::info!(
        header_timeout = %humantime::format_duration(limits.header_timeout),
        body_timeout = %humantime::format_duration(args.body_timeout),
        idle_timeout = %humantime::format_duration(limits.idle_timeout),
        max_connections = limits.max_connections,
        max_connections_per_peer = limits.max_connections_per_peer,
        "connection limits"
    );
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        max_body_bytes = args.max_body_bytes,
        "listening on {scheme}://{addr} (events: POST /v1/events, fleet: /)"
    );
    let central = Central::new(store, tokens, args.max_body_bytes)
        .with_readers(users)
        .with_store_secrets(args.store_secrets)
        .with_body_timeout(args.body_timeout);
    http::serve(listener, tls, Arc::new(central), limits, shutdown).await;
    tracing::info!("stopped");
    Ok(())
}

/// `kea-sync-central user add`: asks for the password and writes the line.
pub fn user_add(args: &UserAddArgs) -> Result<(), CentralError> {
    use std::io::{BufRead, IsTerminal};
    if args.name.is_empty() || args.name.contains(':') || args.name.contains(char::is_whitespace) {
        return Err(CentralError::Password(format!(
            "user name {:?}: give a name without colons or spaces",
            args.name
        )));
    }
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {}: ", args.name))
            .map_err(|e| CentralError::Password(format!("cannot read the password: {e}")))?;
        let again = rpassword::prompt_password("again: ")
            .map_err(|e| CentralError::Password(format!("cannot read the password: {e}")))?;
        if first != again {
            return Err(CentralError::Password(
                "the two passwords differ; nothing written".into(),
            ));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CentralError::Password(format!("cannot read the password: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        return Err(CentralError::Password(
            "an empty password; nothing written".into(),
        ));
    }
    let new = users::add(&args.users_file, &args.name, &password)?;
    let done = if new {
        "added"
    } else {
        "changed the password of"
    };
    println!("{done} {} in {}", args.name, args.users_file.display());
    Ok(())
}
