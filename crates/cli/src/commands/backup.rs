//! `aof backup --out FILE` and `aof restore --from FILE`: a consistent online copy of the
//! SQLite store, and putting one back while the coordinator is stopped.

use std::path::{Path, PathBuf};

use aof_config::Config;

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof backup --out /backups/aof-$(date +%F).db          # while the coordinator runs\n  \
    aof backup --data-dir /var/lib/aof --out /backups/aof.db")]
pub struct BackupArgs {
    /// Where to write the copy (must not exist).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Data directory of the coordinator (the database is `<dir>/observability.db`).
    #[arg(long)]
    pub data_dir: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example (coordinator stopped):\n  \
    aof restore --from /backups/aof.db --data-dir /var/lib/aof")]
pub struct RestoreArgs {
    /// A file written by `aof backup`.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// Data directory to restore into.
    #[arg(long)]
    pub data_dir: Option<String>,
    /// Replace an existing database (the coordinator must be stopped).
    #[arg(long)]
    pub force: bool,
}

impl BackupArgs {
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        self.data_dir
            .iter()
            .map(|d| ("data_dir", d.clone()))
            .collect()
    }
}

impl RestoreArgs {
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        self.data_dir
            .iter()
            .map(|d| ("data_dir", d.clone()))
            .collect()
    }
}

pub async fn backup(args: BackupArgs, cfg: &Config) -> anyhow::Result<u8> {
    let coord = cfg.coordinator()?;
    if coord.postgres_url.is_some() {
        anyhow::bail!("the store is PostgreSQL (AOF_DATABASE_URL): back it up with pg_dump");
    }
    let db = coord.db_path;
    aof_store_sqlite::backup(&db, &args.out)
        .await
        .map_err(|e| anyhow::anyhow!("backup of {}: {e}", db.display()))?;
    eprintln!("backed up {} to {}", db.display(), args.out.display());
    Ok(0)
}

fn remove_if_exists(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

pub async fn restore(args: RestoreArgs, cfg: &Config) -> anyhow::Result<u8> {
    let coord = cfg.coordinator()?;
    if coord.postgres_url.is_some() {
        anyhow::bail!("the store is PostgreSQL (AOF_DATABASE_URL): restore it with pg_restore");
    }
    let db = coord.db_path;
    if !args.from.is_file() {
        anyhow::bail!("{} is not a file", args.from.display());
    }
    if db.exists() && !args.force {
        anyhow::bail!(
            "{} exists; stop the coordinator and pass --force to replace it",
            db.display()
        );
    }
    let (from, db2) = (args.from.clone(), db.clone());
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if let Some(dir) = db2.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Copy beside, then rename: a crash never leaves half a database in place.
        let tmp = db2.with_extension("restore-tmp");
        std::fs::copy(&from, &tmp)?;
        for suffix in ["-wal", "-shm"] {
            remove_if_exists(&PathBuf::from(format!("{}{suffix}", db2.display())))?;
        }
        std::fs::rename(&tmp, &db2)
    })
    .await??;
    eprintln!("restored {} from {}", db.display(), args.from.display());
    Ok(0)
}
