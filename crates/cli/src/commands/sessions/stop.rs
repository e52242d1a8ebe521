//! `aof sessions stop ID`.

use crate::client::Api;

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof sessions stop ses_0123456789ab")]
pub struct Args {
    /// Session id.
    pub id: String,
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    super::super::stop_resource(api, json, "/sessions", "session", &args.id).await
}
