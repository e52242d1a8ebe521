//! `aof keys create --role R [--name N]`.

use aof_wire::auth::{KeyCreated, Role};

use super::Backend;
use crate::table;

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof keys create --role operator --name ci")]
pub struct Args {
    /// admin, operator, viewer or runner.
    #[arg(long)]
    pub role: Role,
    /// A label to recognise the key by in `aof keys list`.
    #[arg(long)]
    pub name: Option<String>,
}

pub async fn run(backend: &Backend, json: bool, args: Args) -> anyhow::Result<u8> {
    let created: KeyCreated = match backend {
        Backend::Online(api) => serde_json::from_value(
            api.post(
                "/auth/keys",
                &serde_json::json!({"role": args.role, "name": args.name}),
            )
            .await?,
        )?,
        Backend::Offline(store) => {
            let (info, key) =
                aof_coordinator::auth::secrets::create_key(store.as_ref(), args.role, args.name)
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
