//! `aof keys create --role R [--name N] [--tags T,…] [--agents A,…]`.

use aof_wire::auth::{KeyCreated, KeyScope, Role};

use super::Backend;
use crate::table;

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof keys create --role operator --name ci\n  \
    aof keys create --role runner --name gpu-box --tags gpu --agents coder,reviewer")]
pub struct Args {
    /// admin, operator, viewer or runner.
    #[arg(long)]
    pub role: Role,
    /// A label to recognise the key by in `aof keys list`.
    #[arg(long)]
    pub name: Option<String>,
    /// Runner keys only: its runners may carry only these tags, and it claims only runs
    /// whose demanded tags are all among them.
    #[arg(long, value_delimiter = ',', value_name = "TAG,…")]
    pub tags: Vec<String>,
    /// Runner keys only: it claims only runs of these agents.
    #[arg(long, value_delimiter = ',', value_name = "AGENT,…")]
    pub agents: Vec<String>,
}

pub async fn run(backend: &Backend, json: bool, args: Args) -> anyhow::Result<u8> {
    // Checked here too, so an offline create refuses what the API would.
    let scope = KeyScope {
        tags: args.tags,
        agents: args.agents,
    }
    .validated(args.role)
    .map_err(anyhow::Error::msg)?;
    let created: KeyCreated = match backend {
        Backend::Online(api) => {
            let mut body = serde_json::json!({"role": args.role, "name": args.name});
            if !scope.is_unlimited() {
                body["tags"] = serde_json::json!(scope.tags);
                body["agents"] = serde_json::json!(scope.agents);
            }
            serde_json::from_value(api.post("/auth/keys", &body).await?)?
        }
        Backend::Offline(store) => {
            let (info, key) = aof_coordinator::auth::secrets::create_key(
                store.as_ref(),
                args.role,
                args.name,
                scope,
            )
            .await?;
            KeyCreated { info, key }
        }
    };
    if json {
        table::print_json(&serde_json::to_value(&created)?);
    } else {
        println!("{}", created.key);
        eprintln!(
            "key {} ({}) created. It is shown only now: store it (e.g. in AOF_API_KEY).",
            created.info.id, created.info.role
        );
    }
    Ok(0)
}
