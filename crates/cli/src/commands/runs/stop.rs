//! `aof runs stop ID`.

use crate::client::Api;

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof runs stop run_0123456789ab")]
pub struct Args {
    /// Run id.
    pub id: String,
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    super::super::stop_resource(api, json, "/runs", "run", &args.id).await
}
