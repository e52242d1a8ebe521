//! `aof`: the single binary. A thin shim over the library crates: parse flags, merge
//! settings (`aof-config`), set up logging and signals, call into coordinator/runner or
//! the HTTP API, map errors to exit codes (0 ok; 1 refused or failed; 2 usage,
//! connection or configuration error).

mod client;
mod commands;
mod follow;
mod logging;
#[cfg(feature = "coordinator")]
mod server_side;
mod sse_client;
mod table;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  aof up                                  # coordinator + runner on 127.0.0.1:8765
  aof run demo \"hello\" --follow           # start a session and stream it
  aof sessions list --json
  aof config show                         # merged settings and where each came from

Settings: flags > environment (AOF_*, reference names as aliases) > --config FILE > defaults.
Exit codes: 0 ok; 1 the operation failed or was refused; 2 usage, connection or config error.";

#[derive(Parser)]
#[command(
    name = "aof",
    version,
    about = "AOF — the Agent Orchestration Framework",
    after_help = EXAMPLES
)]
struct Cli {
    /// TOML settings file (default: AOF_CONFIG; none if unset).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log output: pretty, compact or json (filter with RUST_LOG) [default: compact].
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // Which commands a build has follows its features (Cargo.toml): the images hold
    // only the part they run.
    /// Coordinator + one local runner + embedded SQLite, in one process.
    #[cfg(all(feature = "coordinator", feature = "runner"))]
    Up(commands::up::UpArgs),
    #[cfg(feature = "coordinator")]
    #[command(flatten)]
    ServerSide(server_side::ServerSide),
    /// Run a runner that dials out to a coordinator.
    #[cfg(feature = "runner")]
    #[command(
        after_help = "Example:\n  aof runner --url http://coordinator:8765 --tags gpu --max-concurrent 2"
    )]
    Runner(commands::runner::RunnerArgs),
    /// Start a session for AGENT with PROMPT (or resume one); `--follow` streams it to the end.
    Run(commands::run::RunArgs),
    /// Manage agent blueprints: list, show, apply DIR, delete.
    Agents(commands::agents::AgentsArgs),
    /// Manage sessions: list, show, events [--follow], stop, delete.
    Sessions(commands::sessions::SessionsArgs),
    /// Manage runs: list, show, stop.
    Runs(commands::runs::RunsArgs),
    /// Agent tool calls waiting for a person: list, show, approve, deny.
    Approvals(commands::approvals::ApprovalsArgs),
    /// Manage runners: list, remove.
    Runners(commands::runners::RunnersArgs),
    /// The audit log (admin): who did what, newest first; filter by actor, action, target, time.
    Audit(commands::audit::AuditArgs),
    /// Show the merged settings, or the table of every setting.
    Config(commands::config::ConfigArgs),
    /// Exit 0 if the coordinator at URL answers /health (for container health checks).
    Health(commands::health::HealthArgs),
    /// Bridge Matrix rooms and AOF sessions: chat starts, continues, stops sessions and approves tools.
    #[cfg(feature = "matrix")]
    MatrixBridge(commands::matrix_bridge::MatrixBridgeArgs),
}

impl Command {
    /// The flags this command was given, as `(setting key, value)` for the merge.
    fn flags(&self) -> Vec<(&'static str, String)> {
        match self {
            #[cfg(all(feature = "coordinator", feature = "runner"))]
            Command::Up(a) => a.flags(),
            #[cfg(feature = "coordinator")]
            Command::ServerSide(c) => c.flags(),
            #[cfg(feature = "runner")]
            Command::Runner(a) => a.flags(),
            Command::Run(a) => a.url.flags(),
            Command::Agents(a) => a.common.flags(),
            Command::Sessions(a) => a.common.flags(),
            Command::Runs(a) => a.common.flags(),
            Command::Approvals(a) => a.common.flags(),
            Command::Runners(a) => a.common.flags(),
            Command::Audit(a) => a.common.flags(),
            Command::Config(a) => a.flags(),
            Command::Health(a) => a.flags(),
            #[cfg(feature = "matrix")]
            Command::MatrixBridge(_) => Vec::new(),
        }
    }

    /// The default `service.name` of exported traces; `None`: this command exports none.
    fn otel_service(&self) -> Option<&'static str> {
        match self {
            #[cfg(all(feature = "coordinator", feature = "runner"))]
            Command::Up(_) => Some("aof"),
            #[cfg(feature = "coordinator")]
            Command::ServerSide(c) => c.otel_service(),
            #[cfg(feature = "runner")]
            Command::Runner(_) => Some("aof-runner"),
            #[cfg(feature = "matrix")]
            Command::MatrixBridge(_) => Some("aof-matrix-bridge"),
            _ => None,
        }
    }

    /// Servers log at info; one-shot commands only warn.
    fn is_server(&self) -> bool {
        match self {
            #[cfg(feature = "coordinator")]
            Command::ServerSide(c) => c.is_server(),
            _ => self.otel_service().is_some(),
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut flags = cli.command.flags();
    if let Some(f) = &cli.log_format {
        flags.push(("log.format", f.clone()));
    }
    let inputs = aof_config::Inputs {
        config_path: cli.config.clone(),
        flags,
    };
    let service = cli.command.otel_service();
    let (cfg, otel_guard) = match aof_config::Config::from_process(&inputs).and_then(|c| {
        let format = c.log_format()?;
        let target = c.log_target()?;
        let level = c.log_level()?;
        let otel = match service {
            Some(default) => c.otel()?.map(|o| aof_otel::ExportConfig {
                traces_endpoint: o.traces_endpoint,
                service_name: o.service_name.unwrap_or_else(|| default.to_string()),
            }),
            None => None,
        };
        Ok((c, format, target, level, otel))
    }) {
        Ok((cfg, format, target, level, otel)) => {
            let server = cli.command.is_server();
            let level = level.unwrap_or(if server {
                logging::LogLevel::Info
            } else {
                logging::LogLevel::Warn
            });
            let guard = logging::init(format, target, level, otel.as_ref());
            if server {
                for note in cfg.shadowed() {
                    tracing::info!("settings: {note}");
                }
                // Reference settings AOF ignores or overrules: once each, at start.
                for warning in cfg.warnings() {
                    tracing::warn!("settings: {warning}");
                }
            }
            (cfg, guard)
        }
        Err(e) => {
            eprintln!("aof: {e}");
            return std::process::ExitCode::from(2);
        }
    };
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
            #[cfg(all(feature = "coordinator", feature = "runner"))]
            Command::Up(a) => commands::up::run(a, &cfg).await,
            #[cfg(feature = "coordinator")]
            Command::ServerSide(c) => c.run(&cfg).await,
            #[cfg(feature = "runner")]
            Command::Runner(a) => commands::runner::run(a, &cfg).await,
            Command::Run(a) => commands::run::run(a, &cfg).await,
            Command::Agents(a) => commands::agents::run(a, &cfg).await,
            Command::Sessions(a) => commands::sessions::run(a, &cfg).await,
            Command::Runs(a) => commands::runs::run(a, &cfg).await,
            Command::Approvals(a) => commands::approvals::run(a, &cfg).await,
            Command::Runners(a) => commands::runners::run(a, &cfg).await,
            Command::Audit(a) => commands::audit::run(a, &cfg).await,
            Command::Config(a) => commands::config::run(a, &cfg).await,
            Command::Health(a) => commands::health::run(a, &cfg).await,
            #[cfg(feature = "matrix")]
            Command::MatrixBridge(a) => commands::matrix_bridge::run(a, &cfg).await,
        }
    });
    // The servers have stopped: flush the spans they ended (blocking, so after the runtime).
    // Requests a stop cut are dropped with the runtime; a blocking call one of them left
    // running gets a second, not a hang (`coordinator.shutdown_timeout` was the wait).
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    if let Some(guard) = otel_guard {
        guard.shutdown();
    }
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        // The coordinator answered with an error: the operation was refused.
        Err(e) if e.downcast_ref::<client::Refused>().is_some() => {
            eprintln!("aof: {e}");
            std::process::ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("aof: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
