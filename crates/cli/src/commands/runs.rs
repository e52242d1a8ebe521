//! `aof runs list|show|stop`: runs on the coordinator.

pub mod list;
pub mod show;
pub mod stop;

use aof_config::Config;

use crate::client::{Api, Common};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof runs list --status running\n  \
    aof runs stop run_0123456789ab")]
pub struct RunsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Verb {
    /// List runs.
    List(list::Args),
    /// Show one run.
    Show(show::Args),
    /// Stop a run.
    Stop(stop::Args),
}

pub async fn run(args: RunsArgs, cfg: &Config) -> anyhow::Result<u8> {
    let api = Api::new(&cfg.api()?)?;
    let json = args.common.json;
    match args.verb {
        Verb::List(a) => list::run(&api, json, a).await,
        Verb::Show(a) => show::run(&api, json, a).await,
        Verb::Stop(a) => stop::run(&api, json, a).await,
    }
}
