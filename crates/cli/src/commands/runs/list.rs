//! `aof runs list [--status S]`.

use crate::{
    client::{seg, Api},
    table,
};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof runs list --status pending --json")]
pub struct Args {
    /// Only runs with this status (pending, claimed, running, stopping, completed, …).
    #[arg(long)]
    pub status: Option<String>,
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    let path = match &args.status {
        Some(s) => format!("/runs?status={}", seg(s)),
        None => "/runs".into(),
    };
    let body = api.get(&path).await?;
    if json {
        table::print_json(&body);
        return Ok(0);
    }
    let items = body["runs"].as_array().cloned().unwrap_or_default();
    table::print(
        &[
            "RUN", "STATUS", "SESSION", "AGENT", "RUNNER", "ATTEMPT", "CREATED",
        ],
        &table::rows(
            &items,
            &[
                "run_id",
                "status",
                "session_id",
                "agent_name",
                "runner_id",
                "attempt",
                "created_at",
            ],
        ),
    );
    Ok(0)
}
