//! `aof runners list|remove`: runners registered with the coordinator.

pub mod list;
pub mod remove;

use aof_config::Config;

use crate::client::{Api, Common};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof runners list\n  \
    aof runners remove rnr_0123456789ab")]
pub struct RunnersArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Verb {
    /// List runners with their status.
    List(list::Args),
    /// Deregister a runner (it is told to stop at its next poll).
    Remove(remove::Args),
}

pub async fn run(args: RunnersArgs, cfg: &Config) -> anyhow::Result<u8> {
    let api = Api::new(&cfg.api()?)?;
    let json = args.common.json;
    match args.verb {
        Verb::List(a) => list::run(&api, json, a).await,
        Verb::Remove(a) => remove::run(&api, json, a).await,
    }
}
