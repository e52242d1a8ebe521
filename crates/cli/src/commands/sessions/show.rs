//! `aof sessions show ID`.

use crate::{
    client::{seg, Api},
    table,
};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof sessions show ses_0123456789ab --json")]
pub struct Args {
    /// Session id.
    pub id: String,
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    let body = api.get(&format!("/sessions/{}", seg(&args.id))).await?;
    if json {
        table::print_json(&body);
    } else {
        table::print_object(&body["session"]);
    }
    Ok(0)
}
