//! kea-sync-central's command line and its `serve` command.

use super::dburl::{DbUrl, DbUrlError};
use super::http::{self, ServeError};
use super::ingest::Central;
use super::store::{Store, StoreError};
use super::tls::{TlsError, load_acceptor};
use super::tokens::{Tokens, TokensError};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
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
}

/// `kea-sync-central serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The database: sqlite:///path/central.db, or postgres://user@host:port/db
    /// (add ?host=/socket/dir for a unix socket). Migrations run at start.
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
    /// Largest event body accepted, in bytes, before and after gzip (413 above).
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// PostgreSQL connections kept open (ignored for SQLite).
    #[arg(long, default_value_t = 8)]
    pub db_connections: usize,
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
    Serve(#[from] ServeError),
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
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        max_body_bytes = args.max_body_bytes,
        "listening on {scheme}://{addr} (events: POST /v1/events, fleet: /)"
    );
    let central = Central::new(store, tokens, args.max_body_bytes);
    http::serve(listener, tls, Arc::new(central), shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}
