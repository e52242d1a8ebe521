//! `aof sessions events ID [--follow]`: stored events, optionally streamed to the end.

use crate::{
    client::{seg, Api},
    follow::{self, From},
    table,
};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof sessions events ses_0123456789ab\n  \
    aof sessions events ses_0123456789ab --follow --json   # one event per line")]
pub struct Args {
    /// Session id.
    pub id: String,
    /// Keep streaming until the session ends; exit 0 only if it finished.
    #[arg(long, short)]
    pub follow: bool,
    /// Give up following after this many seconds (default: never).
    #[arg(long, value_parser = super::super::run::positive_secs, requires = "follow")]
    pub timeout: Option<f64>,
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    if args.follow {
        return follow::follow_to_exit(api, &args.id, From::Snapshot, json, args.timeout).await;
    }
    let body = api
        .get(&format!("/sessions/{}/events", seg(&args.id)))
        .await?;
    if json {
        table::print_json(&body);
        return Ok(0);
    }
    for ev in body["events"].as_array().into_iter().flatten() {
        follow::print_event(ev, false);
    }
    Ok(0)
}
