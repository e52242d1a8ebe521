//! `aof agents apply DIR`: make the coordinator's agents match folders on disk.
//!
//! DIR is one agent folder (it holds `agent.json`) or a folder of agent folders. Each
//! agent is `agent.json` plus the optional `agent.system-prompt.md` (used verbatim) and
//! `agent.mcp.json` (`{"mcpServers": {...}}`). New agents are `POST /agents`; an agent
//! that exists (409) is `PATCH /agents/{name}`, with the optional parts it lacks sent
//! empty so they are removed: applying twice gives the same agent.

use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::{
    client::{seg, Api, Refused},
    table,
};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof agents apply ./config/agents            # every <name>/agent.json below\n  \
    aof agents apply ./config/agents/researcher # one agent")]
pub struct Args {
    /// An agent folder, or a folder of agent folders.
    pub dir: PathBuf,
}

/// Makes the empty value that clears a key.
type Empty = fn() -> Value;

/// Keys an update clears by sending an empty value (per the reference's AgentUpdate).
const CLEARABLE: &[(&str, Empty)] = &[
    ("script", || json!("")),
    ("parameters_schema", || json!({})),
    ("output_schema", || json!({})),
    ("skills", || json!([])),
    ("tags", || json!([])),
    ("capabilities", || json!([])),
    ("demands", || json!({})),
    ("hooks", || json!({})),
    ("system_prompt", || json!("")),
    ("mcp_servers", || json!({})),
];

/// The agent folders under `dir`, sorted.
fn agent_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if dir.join("agent.json").is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("agent.json").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        anyhow::bail!(
            "{} holds no agent: neither {0}/agent.json nor {0}/*/agent.json exists",
            dir.display()
        );
    }
    Ok(dirs)
}

/// Reads one agent folder into the create body.
pub fn read_agent(dir: &Path) -> anyhow::Result<(String, Map<String, Value>)> {
    let file = dir.join("agent.json");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not valid JSON: {e}", file.display()))?;
    let Value::Object(mut body) = value else {
        anyhow::bail!("{}: must hold a JSON object", file.display());
    };
    let folder = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match body.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        None => folder,
        Some(_) => anyhow::bail!("{}: `name` must be a non-empty string", file.display()),
    };
    body.insert("name".into(), json!(name));
    let prompt = dir.join("agent.system-prompt.md");
    if prompt.is_file() {
        let text = std::fs::read_to_string(&prompt)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", prompt.display()))?;
        body.insert("system_prompt".into(), json!(text));
    }
    let mcp = dir.join("agent.mcp.json");
    if mcp.is_file() {
        let text = std::fs::read_to_string(&mcp)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", mcp.display()))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not valid JSON: {e}", mcp.display()))?;
        match v.get("mcpServers") {
            Some(servers @ Value::Object(_)) => {
                body.insert("mcp_servers".into(), servers.clone());
            }
            _ => anyhow::bail!(
                "{}: must be {{\"mcpServers\": {{NAME: {{\"ref\": ID}}}}}}",
                mcp.display()
            ),
        }
    }
    Ok((name, body))
}

/// The update body: everything but the name, with absent optional parts emptied.
fn patch_body(body: &Map<String, Value>) -> Value {
    let mut patch = body.clone();
    patch.remove("name");
    for (key, empty) in CLEARABLE {
        patch.entry(key.to_string()).or_insert_with(empty);
    }
    patch.entry("type").or_insert_with(|| json!("autonomous"));
    Value::Object(patch)
}

/// Creates or updates one agent; returns "created" or "updated".
async fn apply_one(
    api: &Api,
    name: &str,
    body: Map<String, Value>,
) -> anyhow::Result<&'static str> {
    match api.post("/agents", &Value::Object(body.clone())).await {
        Ok(_) => Ok("created"),
        Err(e)
            if e.downcast_ref::<Refused>()
                .is_some_and(|r| r.status == StatusCode::CONFLICT) =>
        {
            api.call(
                Method::PATCH,
                &format!("/agents/{}", seg(name)),
                Some(&patch_body(&body)),
            )
            .await?;
            Ok("updated")
        }
        Err(e) => Err(e),
    }
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    // Read everything first: a broken folder is a usage error and nothing is sent.
    let agents = agent_dirs(&args.dir)?
        .iter()
        .map(|d| read_agent(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut results = Vec::new();
    let mut failed = 0;
    for (name, body) in agents {
        match apply_one(api, &name, body).await {
            Ok(action) => {
                if !json {
                    eprintln!("{action} agent {name}");
                }
                results.push(json!({"name": name, "result": action}));
            }
            Err(e) if e.downcast_ref::<Refused>().is_some() => {
                eprintln!("aof: agent {name}: {e}");
                results.push(json!({"name": name, "result": "failed", "error": e.to_string()}));
                failed += 1;
            }
            Err(e) => return Err(e),
        }
    }
    if json {
        table::print_json(&Value::Array(results));
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_folders_and_builds_bodies() {
        let root = std::env::temp_dir().join(format!("aof-apply-{}", std::process::id()));
        let a = root.join("alpha");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(a.join("agent.json"), r#"{"description":"A","tags":["x"]}"#).unwrap();
        std::fs::write(a.join("agent.system-prompt.md"), "Be brief.\n").unwrap();
        std::fs::write(
            a.join("agent.mcp.json"),
            r#"{"mcpServers":{"o":{"ref":"orch"}}}"#,
        )
        .unwrap();
        std::fs::create_dir_all(root.join("not-an-agent")).unwrap();
        let dirs = agent_dirs(&root).unwrap();
        assert_eq!(dirs, vec![a.clone()]);
        assert_eq!(agent_dirs(&a).unwrap(), vec![a.clone()]);
        let (name, body) = read_agent(&a).unwrap();
        assert_eq!(name, "alpha");
        assert_eq!(body["system_prompt"], "Be brief.\n");
        assert_eq!(body["mcp_servers"], json!({"o": {"ref": "orch"}}));
        let patch = patch_body(&body);
        assert!(patch.get("name").is_none());
        assert_eq!(patch["capabilities"], json!([]));
        assert_eq!(patch["tags"], json!(["x"]));
        assert!(agent_dirs(&root.join("not-an-agent"))
            .unwrap_err()
            .to_string()
            .contains("holds no agent"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
