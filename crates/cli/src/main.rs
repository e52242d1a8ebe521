//! `aof`: the single binary. A thin shim over the library crates: parse flags, set up
//! logging and signals, call into coordinator/runner, map errors to exit codes.

mod commands;
mod logging;
mod sse_client;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "aof",
    version,
    about = "AOF — the Agent Orchestration Framework"
)]
struct Cli {
    /// Log output: pretty, compact or json (filter with RUST_LOG).
    #[arg(long, global = true, env = "AOF_LOG_FORMAT", default_value = "compact")]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Coordinator + one local runner + embedded SQLite, in one process.
    Up(commands::up::UpArgs),
    /// Run the coordinator alone.
    Coordinator(commands::coordinator::CoordinatorArgs),
    /// Run a runner that dials out to a coordinator.
    Runner(commands::runner::RunnerArgs),
    /// Start a session for AGENT with PROMPT; `--follow` streams it to the end.
    Run(commands::run::RunArgs),
    /// Exit 0 if the coordinator at URL answers /health (for container health checks).
    Health(commands::health::HealthArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Run(_) | Command::Health(_));
    logging::init(cli.log_format, if quiet { "warn" } else { "info" });
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("aof: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Up(a) => commands::up::run(a).await,
            Command::Coordinator(a) => commands::coordinator::run(a).await,
            Command::Runner(a) => commands::runner::run(a).await,
            Command::Run(a) => commands::run::run(a).await,
            Command::Health(a) => commands::health::run(a).await,
        }
    });
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("aof: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
