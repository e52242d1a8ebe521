//! `aof runners list`.

use crate::{client::Api, table};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof runners list --json")]
pub struct Args {}

pub async fn run(api: &Api, json: bool, _args: Args) -> anyhow::Result<u8> {
    let body = api.get("/runners").await?;
    if json {
        table::print_json(&body);
        return Ok(0);
    }
    let items = body["runners"].as_array().cloned().unwrap_or_default();
    let mut rows = table::rows(
        &items,
        &[
            "runner_id",
            "status",
            "hostname",
            "executor_profile",
            "tags",
        ],
    );
    for (row, it) in rows.iter_mut().zip(&items) {
        let secs = it["seconds_since_heartbeat"].as_f64().unwrap_or(0.0);
        row.push(format!("{secs:.0}s ago"));
    }
    table::print(
        &["RUNNER", "STATUS", "HOST", "PROFILE", "TAGS", "HEARTBEAT"],
        &rows,
    );
    Ok(0)
}
