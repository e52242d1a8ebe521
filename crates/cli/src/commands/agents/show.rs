//! `aof agents show NAME`.

use crate::{
    client::{seg, Api},
    table,
};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof agents show researcher --json")]
pub struct Args {
    /// Agent name.
    pub name: String,
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    let body = api.get(&format!("/agents/{}", seg(&args.name))).await?;
    if json {
        table::print_json(&body);
    } else {
        table::print_object(&body);
    }
    Ok(0)
}
