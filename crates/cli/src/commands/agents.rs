//! `aof agents list|show|apply|delete`: agent blueprints on the coordinator.

pub mod apply;
pub mod delete;
pub mod list;
pub mod show;

use aof_config::Config;

use crate::client::{Api, Common};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof agents apply ./agents        # a folder of agent folders, or one agent folder\n  \
    aof agents list --tags internal\n  \
    aof agents show researcher --json")]
pub struct AgentsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Verb {
    /// List agents.
    List(list::Args),
    /// Show one agent.
    Show(show::Args),
    /// Create or update agents from folders (agent.json, agent.system-prompt.md, agent.mcp.json).
    Apply(apply::Args),
    /// Delete an agent.
    Delete(delete::Args),
}

pub async fn run(args: AgentsArgs, cfg: &Config) -> anyhow::Result<u8> {
    let api = Api::new(&cfg.api()?)?;
    let json = args.common.json;
    match args.verb {
        Verb::List(a) => list::run(&api, json, a).await,
        Verb::Show(a) => show::run(&api, json, a).await,
        Verb::Apply(a) => apply::run(&api, json, a).await,
        Verb::Delete(a) => delete::run(&api, json, a).await,
    }
}
