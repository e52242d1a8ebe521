//! `aof config table`: the markdown table of every setting, generated from the registry
//! (README.md and ARCHITECTURE.md embed exactly this; a test keeps them in step), or with
//! `--reference` the table of the AOF reference's variables and what AOF does with each.

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The AOF reference's environment variables: accepted, mapped or refused.
    #[arg(long)]
    pub reference: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    if args.reference {
        print!("{}", aof_config::reference::markdown_table());
    } else {
        print!("{}", aof_config::markdown_table());
    }
    Ok(0)
}
