//! `aof keys create|list|revoke`: API keys. Online through `/auth/keys` with an admin
//! key in `AOF_API_KEY`; offline with `--data-dir`/`--db`, opening the SQLite database
//! directly — how the first admin key is made, so no default credential ever exists.

pub mod create;
pub mod list;
pub mod revoke;

use std::{path::PathBuf, sync::Arc};

use aof_config::Config;
use aof_store::prelude::*;
use aof_store_postgres::{PgOptions, PgStore};
use aof_store_sqlite::{SqliteOptions, SqliteStore};

use crate::client::{Api, Common};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof keys create --role admin --data-dir /var/lib/aof   # the first admin key, offline\n  \
    AOF_API_KEY=aof_… aof keys create --role runner --name gpu-box\n  \
    aof keys list\n  \
    aof keys revoke 0123456789ab")]
pub struct KeysArgs {
    #[command(flatten)]
    pub common: Common,
    /// Work offline on this data directory's database (no coordinator, no key needed).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Work offline on this SQLite database file.
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "data_dir")]
    pub db: Option<PathBuf>,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Verb {
    /// Create a key; it is printed once, on stdout.
    Create(create::Args),
    /// List keys (ids, roles, prefixes; never secrets).
    List(list::Args),
    /// Revoke a key by id; requests with it get 401 from then on.
    Revoke(revoke::Args),
}

impl KeysArgs {
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        let mut f = self.common.flags();
        f.extend(self.data_dir.iter().map(|d| ("data_dir", d.clone())));
        f
    }
}

/// Where keys live for this invocation.
pub enum Backend {
    Online(Api),
    Offline(Arc<dyn Store>),
}

pub async fn run(args: KeysArgs, cfg: &Config) -> anyhow::Result<u8> {
    let db = match (&args.db, &args.data_dir) {
        (Some(db), _) => Some(db.clone()),
        (None, Some(_)) => Some(cfg.data_dir().join("observability.db")),
        (None, None) => None,
    };
    // Offline against PostgreSQL when the coordinator's store is (AOF_DATABASE_URL).
    let postgres = match (&args.db, &args.data_dir) {
        (None, Some(_)) => cfg.coordinator()?.postgres_url,
        _ => None,
    };
    let backend = match db {
        Some(_) if postgres.is_some() => {
            let url = postgres.expect("checked");
            let store = PgStore::connect(&url.0, PgOptions::default())
                .await
                .map_err(|e| anyhow::anyhow!("opening PostgreSQL {url:?}: {e}"))?;
            Backend::Offline(Arc::new(store))
        }
        Some(path) => {
            let store = SqliteStore::open(&path, SqliteOptions::default())
                .await
                .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
            Backend::Offline(Arc::new(store))
        }
        None => Backend::Online(Api::new(&cfg.api()?)?),
    };
    let json = args.common.json;
    match args.verb {
        Verb::Create(a) => create::run(&backend, json, a).await,
        Verb::List(a) => list::run(&backend, json, a).await,
        Verb::Revoke(a) => revoke::run(&backend, json, a).await,
    }
}
