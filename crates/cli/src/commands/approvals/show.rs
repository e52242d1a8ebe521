//! `aof approvals show ID`.

use aof_wire::approval::Approval;

use crate::{
    client::{seg, Api},
    table,
};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof approvals show apr_0123456789ab")]
pub struct Args {
    /// Approval id.
    pub id: String,
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    let body = api.get(&format!("/approvals/{}", seg(&args.id))).await?;
    print(json, body)
}

/// One approval: JSON, or `key  value` lines with the tool input pretty-printed after.
pub fn print(json: bool, body: serde_json::Value) -> anyhow::Result<u8> {
    if json {
        table::print_json(&body);
        return Ok(0);
    }
    let a: Approval = serde_json::from_value(body.clone())
        .map_err(|e| anyhow::anyhow!("the approval is not in the AOF shape: {e}"))?;
    let mut head = body;
    if let Some(o) = head.as_object_mut() {
        o.remove("tool_input");
        o.remove("updated_input");
    }
    table::print_object(&head);
    println!("tool_input:");
    println!("{}", pretty(&a.tool_input));
    if let Some(u) = &a.updated_input {
        println!("updated_input:");
        println!("{}", pretty(u));
    }
    Ok(0)
}

fn pretty(o: &aof_wire::approval::JsonObject) -> String {
    serde_json::to_string_pretty(o).unwrap_or_default()
}
