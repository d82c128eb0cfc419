//! kea-sync-agent: parse the command line, start logging, hand over to the library.

use clap::Parser;
use kea_sync_agent::agent::config::LogFormat;
use kea_sync_agent::cli::{Cli, EXIT_BAD_INPUT, execute};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // A usage error is bad input (3); clap's own 2 is the agent's "unreachable".
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // --help and --version are no errors.
            return if error.use_stderr() {
                ExitCode::from(EXIT_BAD_INPUT)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // Logs go to stderr so stdout stays clean JSON for scripts.
    let filter =
        EnvFilter::try_from_env("KEA_SYNC_AGENT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format() {
        LogFormat::Json => logs.json().with_current_span(false).init(),
        // Colour only for a person at a terminal: journald stores escapes as binary.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(execute(cli))
}
