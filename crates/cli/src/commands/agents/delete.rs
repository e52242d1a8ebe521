//! `aof agents delete NAME`.

use reqwest::Method;

use crate::client::{seg, Api};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof agents delete researcher")]
pub struct Args {
    /// Agent name.
    pub name: String,
}

pub async fn run(api: &Api, _json: bool, args: Args) -> anyhow::Result<u8> {
    api.call(
        Method::DELETE,
        &format!("/agents/{}", seg(&args.name)),
        None,
    )
    .await?;
    eprintln!("deleted agent {}", args.name);
    Ok(0)
}
