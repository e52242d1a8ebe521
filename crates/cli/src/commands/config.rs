//! `aof config show|table`: the merged settings, and the documentation table.

pub mod show;
pub mod table;

use aof_config::Config;

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof config show\n  \
    AOF_LEASE_TTL=10 aof --config aof.toml config show --json\n  \
    aof config table > settings.md\n  \
    aof config table --reference")]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Verb {
    /// Print every setting's merged value and where it came from (secrets masked).
    Show(show::Args),
    /// Print the markdown table of every setting (as in the README).
    Table(table::Args),
}

impl ConfigArgs {
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        match &self.verb {
            Verb::Show(a) => a.url.flags(),
            Verb::Table(_) => Vec::new(),
        }
    }
}

pub async fn run(args: ConfigArgs, cfg: &Config) -> anyhow::Result<u8> {
    match args.verb {
        Verb::Show(a) => show::run(cfg, a),
        Verb::Table(a) => table::run(a),
    }
}
