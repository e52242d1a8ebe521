//! `aof keys revoke ID`.

use reqwest::Method;

use super::Backend;
use crate::{
    client::{seg, Refused},
    table,
};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof keys revoke 0123456789ab")]
pub struct Args {
    /// Key id (as `aof keys list` shows it).
    pub id: String,
}

pub async fn run(backend: &Backend, json: bool, args: Args) -> anyhow::Result<u8> {
    let body = match backend {
        Backend::Online(api) => {
            api.call(
                Method::DELETE,
                &format!("/auth/keys/{}", seg(&args.id)),
                None,
            )
            .await?
        }
        Backend::Offline(store) => {
            if !store.revoke_key(&args.id).await? {
                return Err(Refused {
                    status: reqwest::StatusCode::NOT_FOUND,
                    code: Some("key_not_found".into()),
                    message: format!("no key {}", args.id),
                }
                .into());
            }
            serde_json::json!({"id": args.id, "revoked": true})
        }
    };
    if json {
        table::print_json(&body);
    } else {
        eprintln!("key {} revoked", args.id);
    }
    Ok(0)
}
