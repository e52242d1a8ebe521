//! `aof runs show ID`.

use crate::{
    client::{seg, Api},
    table,
};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof runs show run_0123456789ab")]
pub struct Args {
    /// Run id.
    pub id: String,
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    let body = api.get(&format!("/runs/{}", seg(&args.id))).await?;
    if json {
        table::print_json(&body);
    } else {
        table::print_object(&body);
    }
    Ok(0)
}
