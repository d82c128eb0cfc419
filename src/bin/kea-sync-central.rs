//! kea-sync-central: parse the command line, start logging, turn SIGINT/SIGTERM
//! into a shutdown, hand over to the library.

use anyhow::Context;
use clap::Parser;
use kea_sync_agent::central::cli::{CentralCli, CentralCommand, UserCommand, serve, user_add};
use std::io::IsTerminal;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = CentralCli::parse();
    if let CentralCommand::User(UserCommand::Add(args)) = &cli.command {
        user_add(args)?;
        return Ok(());
    }
    let serve_args = match cli.command {
        CentralCommand::Serve(args) => args,
        CentralCommand::User(_) => return Ok(()),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("KEA_SYNC_CENTRAL_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut terminate =
            signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("shutting down");
        };
        if let Err(error) = serve(serve_args, shutdown).await {
            // The journal shows one line, then systemd the status: 6 is not
            // restarted (a configuration error), 1 is.
            tracing::error!("{error}");
            eprintln!("kea-sync-central: {error}");
            std::process::exit(error.exit_code());
        }
        Ok(())
    })
}
