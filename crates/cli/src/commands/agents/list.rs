//! `aof agents list [--tags a,b]`.

use serde_json::Value;

use crate::{
    client::{seg, Api},
    table,
};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof agents list --tags internal,research")]
pub struct Args {
    /// Only agents having all these tags (comma separated).
    #[arg(long, value_name = "A,B")]
    pub tags: Option<String>,
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    let path = match &args.tags {
        Some(t) => format!("/agents?tags={}", seg(t)),
        None => "/agents".into(),
    };
    let body = api.get(&path).await?;
    if json {
        table::print_json(&body);
        return Ok(0);
    }
    // The reference answers a bare array; accept `{"agents": [...]}` too.
    let items = match &body {
        Value::Array(a) => a.clone(),
        other => other["agents"].as_array().cloned().unwrap_or_default(),
    };
    table::print(
        &["NAME", "TYPE", "STATUS", "TAGS", "DESCRIPTION"],
        &table::rows(&items, &["name", "type", "status", "tags", "description"]),
    );
    Ok(0)
}
