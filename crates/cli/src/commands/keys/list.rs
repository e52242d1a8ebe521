//! `aof keys list`.

use aof_wire::auth::KeyList;

use super::Backend;
use crate::table;

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof keys list --json")]
pub struct Args {}

pub async fn run(backend: &Backend, json: bool, _args: Args) -> anyhow::Result<u8> {
    let list: KeyList = match backend {
        Backend::Online(api) => serde_json::from_value(api.get("/auth/keys").await?)?,
        Backend::Offline(store) => KeyList {
            keys: store
                .list_keys()
                .await?
                .iter()
                .map(aof_coordinator::auth::secrets::info)
                .collect(),
        },
    };
    if json {
        table::print_json(&serde_json::to_value(&list)?);
        return Ok(0);
    }
    // A scope column: "-" for an unlimited key.
    let scope = |list: &[String]| match list.is_empty() {
        true => "-".to_string(),
        false => list.join(","),
    };
    let rows: Vec<Vec<String>> = list
        .keys
        .iter()
        .map(|k| {
            vec![
                k.id.clone(),
                k.role.to_string(),
                k.name.clone().unwrap_or_default(),
                k.prefix.clone(),
                scope(&k.tags),
                scope(&k.agents),
                k.created_at.clone(),
                k.revoked_at.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table::print(
        &[
            "ID", "ROLE", "NAME", "PREFIX", "TAGS", "AGENTS", "CREATED", "REVOKED",
        ],
        &rows,
    );
    Ok(0)
}
