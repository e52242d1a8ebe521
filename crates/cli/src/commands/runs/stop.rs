//! `aof runs stop ID`.

use crate::{
    client::{seg, Api},
    table,
};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof runs stop run_0123456789ab")]
pub struct Args {
    /// Run id.
    pub id: String,
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    let body = api
        .post(
            &format!("/runs/{}/stop", seg(&args.id)),
            &serde_json::json!({}),
        )
        .await?;
    if json {
        table::print_json(&body);
    } else {
        let msg = body["message"]
            .as_str()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        eprintln!(
            "run {}: {}{msg}",
            args.id,
            body["status"].as_str().unwrap_or("stop requested")
        );
    }
    Ok(0)
}
