//! `aof runners remove ID`.

use reqwest::Method;

use crate::{
    client::{seg, Api},
    table,
};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof runners remove rnr_0123456789ab")]
pub struct Args {
    /// Runner id.
    pub id: String,
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    let body = api
        .call(Method::DELETE, &format!("/runners/{}", seg(&args.id)), None)
        .await?;
    if json {
        table::print_json(&body);
    } else {
        eprintln!(
            "runner {}: {}",
            args.id,
            body["message"].as_str().unwrap_or("removed")
        );
    }
    Ok(0)
}
