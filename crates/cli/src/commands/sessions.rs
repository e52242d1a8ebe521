//! `aof sessions list|show|events|stop|delete|purge`: sessions on the coordinator.

pub mod delete;
pub mod events;
pub mod list;
pub mod purge;
pub mod show;
pub mod stop;

use aof_config::Config;

use crate::client::{Api, Common};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof sessions list\n  \
    aof sessions events ses_0123456789ab --follow\n  \
    aof sessions stop ses_0123456789ab")]
pub struct SessionsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Verb {
    /// List sessions, newest first.
    List(list::Args),
    /// Show one session.
    Show(show::Args),
    /// Print a session's events; `--follow` streams until it ends.
    Events(events::Args),
    /// Stop a session's active run.
    Stop(stop::Args),
    /// Delete a session with its events and runs.
    Delete(delete::Args),
    /// Delete ended sessions without recent activity, with their events and runs (admin).
    Purge(purge::Args),
}

pub async fn run(args: SessionsArgs, cfg: &Config) -> anyhow::Result<u8> {
    let api = Api::new(&cfg.api()?)?;
    let json = args.common.json;
    match args.verb {
        Verb::List(a) => list::run(&api, json, a).await,
        Verb::Show(a) => show::run(&api, json, a).await,
        Verb::Events(a) => events::run(&api, json, a).await,
        Verb::Stop(a) => stop::run(&api, json, a).await,
        Verb::Delete(a) => delete::run(&api, json, a).await,
        Verb::Purge(a) => purge::run(&api, json, a).await,
    }
}
