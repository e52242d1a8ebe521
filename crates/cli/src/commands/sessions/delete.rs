//! `aof sessions delete ID`.

use reqwest::Method;

use crate::{
    client::{seg, Api},
    table,
};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof sessions delete ses_0123456789ab")]
pub struct Args {
    /// Session id.
    pub id: String,
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    let body = api
        .call(
            Method::DELETE,
            &format!("/sessions/{}", seg(&args.id)),
            None,
        )
        .await?;
    if json {
        table::print_json(&body);
    } else {
        let d = &body["deleted"];
        eprintln!(
            "deleted session {} ({} events, {} runs)",
            args.id,
            d["events_count"].as_i64().unwrap_or(0),
            d["runs_count"].as_i64().unwrap_or(0)
        );
    }
    Ok(0)
}
