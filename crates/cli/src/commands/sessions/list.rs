//! `aof sessions list`.

use crate::{client::Api, table};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof sessions list --status running")]
pub struct Args {
    /// Only sessions with this status (pending, running, finished, failed, stopped, …).
    #[arg(long)]
    pub status: Option<String>,
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    let mut body = api.get("/sessions").await?;
    if let (Some(want), Some(list)) = (&args.status, body["sessions"].as_array_mut()) {
        list.retain(|s| s["status"].as_str() == Some(want.as_str()));
    }
    if json {
        table::print_json(&body);
        return Ok(0);
    }
    let mut items = body["sessions"].as_array().cloned().unwrap_or_default();
    items.sort_by(|a, b| b["created_at"].as_str().cmp(&a["created_at"].as_str()));
    table::print(
        &["SESSION", "STATUS", "AGENT", "CREATED", "HOST"],
        &table::rows(
            &items,
            &[
                "session_id",
                "status",
                "agent_name",
                "created_at",
                "hostname",
            ],
        ),
    );
    Ok(0)
}
