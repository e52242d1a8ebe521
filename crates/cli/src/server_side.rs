//! The commands that need the coordinator, its stores or the dashboard server (the
//! `coordinator` feature): flattened into `aof`'s subcommands, so a build without them
//! (the runner images) has none of their code.

use clap::Subcommand;

use crate::commands;

#[derive(Subcommand)]
pub enum ServerSide {
    /// Run the coordinator alone.
    #[command(
        after_help = "Example:\n  aof coordinator --listen 0.0.0.0:8765 --data-dir /var/lib/aof"
    )]
    Coordinator(commands::coordinator::CoordinatorArgs),
    /// Serve the web dashboard standalone, forwarding API calls to the coordinator.
    Dashboard(commands::dashboard::DashboardArgs),
    /// Manage API keys: create, list, revoke (offline with --data-dir, for the first admin key).
    Keys(commands::keys::KeysArgs),
    /// Write a consistent copy of the store while the coordinator runs.
    Backup(commands::backup::BackupArgs),
    /// Put a backup in place (coordinator stopped).
    Restore(commands::backup::RestoreArgs),
    /// Import an AOF reference coordinator's database (sessions, runs, events).
    Import(commands::import::ImportArgs),
    /// What this deployment exposes (auth, CORS, listeners, runner policy), with a verdict per line.
    Doctor(commands::doctor::DoctorArgs),
    /// Measure an AOF-compatible coordinator over HTTP.
    Bench(commands::bench::BenchArgs),
}

impl ServerSide {
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        match self {
            ServerSide::Coordinator(a) => a.flags(),
            ServerSide::Dashboard(a) => a.flags(),
            ServerSide::Keys(a) => a.flags(),
            ServerSide::Backup(a) => a.flags(),
            ServerSide::Restore(a) => a.flags(),
            ServerSide::Import(a) => a.flags(),
            ServerSide::Doctor(a) => a.flags(),
            ServerSide::Bench(_) => Vec::new(),
        }
    }

    pub fn otel_service(&self) -> Option<&'static str> {
        matches!(self, ServerSide::Coordinator(_)).then_some("aof-coordinator")
    }

    pub fn is_server(&self) -> bool {
        matches!(self, ServerSide::Coordinator(_) | ServerSide::Dashboard(_))
    }

    pub async fn run(self, cfg: &aof_config::Config) -> anyhow::Result<u8> {
        match self {
            ServerSide::Coordinator(a) => commands::coordinator::run(a, cfg).await,
            ServerSide::Dashboard(a) => commands::dashboard::run(a, cfg).await,
            ServerSide::Keys(a) => commands::keys::run(a, cfg).await,
            ServerSide::Backup(a) => commands::backup::backup(a, cfg).await,
            ServerSide::Restore(a) => commands::backup::restore(a, cfg).await,
            ServerSide::Import(a) => commands::import::run(a, cfg).await,
            ServerSide::Doctor(a) => commands::doctor::run(a, cfg).await,
            ServerSide::Bench(a) => commands::bench::run(a).await,
        }
    }
}
