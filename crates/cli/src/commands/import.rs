//! `aof import --from-reference FILE`: moves an AOF reference coordinator's history
//! (its `observability.db`: sessions, runs, events) into our store, SQLite or
//! PostgreSQL. The file is only read; importing twice stores everything once.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use aof_config::Config;
use aof_store::prelude::*;
use aof_store_postgres::{PgOptions, PgStore};
use aof_store_sqlite::{reference, SqliteOptions, SqliteStore};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples (coordinator stopped or running):\n  \
    aof import --from-reference /old/.agent-orchestrator/observability.db --data-dir /var/lib/aof\n  \
    AOF_DATABASE_URL=postgres://... aof import --from-reference observability.db\n\n\
    Agent blueprints have the same folder format: the reference's agents folder (next to\n\
    its database, or --reference-agents DIR) is copied into the coordinator's agents dir;\n\
    an agent that exists there already is kept as it is.")]
pub struct ImportArgs {
    /// The reference coordinator's database file (`observability.db`), read-only.
    #[arg(long, value_name = "FILE")]
    pub from_reference: PathBuf,
    /// Data directory to import into (the database is `<dir>/observability.db`); with
    /// AOF_DATABASE_URL set, the PostgreSQL store instead.
    #[arg(long)]
    pub data_dir: Option<String>,
    /// The reference's agents folder (default: `agents` next to the database file).
    #[arg(long, value_name = "DIR")]
    pub reference_agents: Option<PathBuf>,
    /// Hand the new SQLite data dir (database, copied agents) to UID:GID afterwards. For
    /// a root-owned reference volume imported as root for an image that runs as 1000:1000.
    #[arg(long, value_name = "UID:GID", value_parser = parse_owner)]
    pub owner: Option<(u32, u32)>,
}

fn parse_owner(s: &str) -> Result<(u32, u32), String> {
    let (u, g) = s.split_once(':').ok_or("must be UID:GID, e.g. 1000:1000")?;
    let num = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| format!("{v:?} is not a number"))
    };
    Ok((num(u)?, num(g)?))
}

impl ImportArgs {
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        self.data_dir
            .iter()
            .map(|d| ("data_dir", d.clone()))
            .collect()
    }
}

pub async fn run(args: ImportArgs, cfg: &Config) -> anyhow::Result<u8> {
    let from = args.from_reference.clone();
    let data = tokio::task::spawn_blocking(move || reference::read_reference(&from)).await??;
    let coord = cfg.coordinator()?;
    let store: Arc<dyn Store> = match &coord.postgres_url {
        Some(url) => Arc::new(
            PgStore::connect(&url.0, PgOptions::default())
                .await
                .map_err(|e| anyhow::anyhow!("opening PostgreSQL {url:?}: {e}"))?,
        ),
        None => {
            let db = coord.db_path.clone();
            if same_file(&db, &args.from_reference) {
                anyhow::bail!(
                    "{} is the reference database itself: import into another data dir (--data-dir NEW_DIR)",
                    db.display()
                );
            }
            Arc::new(
                SqliteStore::open(&db, SqliteOptions::default())
                    .await
                    .map_err(|e| anyhow::anyhow!("opening {}: {e}", db.display()))?,
            )
        }
    };
    let (mut imported, mut skipped, mut runs, mut events) = (0usize, 0usize, 0usize, 0usize);
    for s in data.sessions {
        let (n_runs, n_events) = (s.runs.len(), s.events.len());
        let id = s.session.session_id.clone();
        if store
            .import_session(s)
            .await
            .map_err(|e| anyhow::anyhow!("importing session {id}: {e}"))?
        {
            imported += 1;
            runs += n_runs;
            events += n_events;
        } else {
            skipped += 1;
        }
    }
    println!(
        "imported {imported} sessions ({runs} runs, {events} events) from {}",
        args.from_reference.display()
    );
    if skipped > 0 {
        println!("skipped {skipped} sessions already in the store (imported before)");
    }
    let agents_from = args.reference_agents.clone().unwrap_or_else(|| {
        args.from_reference
            .parent()
            .unwrap_or(Path::new("."))
            .join("agents")
    });
    let agents_to = coord.agents_dir.clone();
    let (copied, kept) =
        tokio::task::spawn_blocking(move || copy_agents(&agents_from, &agents_to)).await??;
    if copied + kept > 0 {
        println!(
            "agents: copied {copied} into {}, kept {kept} that existed there",
            coord.agents_dir.display()
        );
    }
    if let Some((uid, gid)) = args.owner {
        if coord.postgres_url.is_some() {
            anyhow::bail!("--owner applies to a SQLite data dir; the store is PostgreSQL");
        }
        drop(store);
        let paths = [
            coord.db_path.parent().map(Path::to_path_buf),
            Some(coord.agents_dir.clone()),
        ];
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            for p in paths.into_iter().flatten() {
                chown_tree(&p, uid, gid)?;
            }
            Ok(())
        })
        .await??;
        println!("handed the data dir to {uid}:{gid}");
    }
    if data.sessions_in_flight + data.runs_in_flight > 0 {
        println!(
            "{} sessions and {} runs were still in flight in the reference: imported as failed, not run again",
            data.sessions_in_flight, data.runs_in_flight
        );
    }
    Ok(0)
}

/// Copies each agent folder of `from` that `to` lacks (files 0600, folders 0700, like
/// the blueprints the coordinator writes); returns (copied, kept). No folder: (0, 0).
fn copy_agents(from: &Path, to: &Path) -> anyhow::Result<(usize, usize)> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok((0, 0));
    };
    let (mut copied, mut kept) = (0, 0);
    for e in entries {
        let e = e?;
        // Plain folders of plain files only: a symlink could point anywhere.
        if !e.file_type()?.is_dir() {
            continue;
        }
        let dest = to.join(e.file_name());
        if dest.exists() {
            kept += 1;
            continue;
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dest)?;
        for f in std::fs::read_dir(e.path())? {
            let f = f?;
            if !f.file_type()?.is_file() {
                continue;
            }
            let bytes = std::fs::read(f.path())?;
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest.join(f.file_name()))?;
            std::io::Write::write_all(&mut out, &bytes)?;
        }
        copied += 1;
    }
    Ok((copied, kept))
}

/// `chown -R` without following symlinks; a missing path is skipped.
fn chown_tree(p: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return Ok(());
    };
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        .map_err(|e| anyhow::anyhow!("chown {uid}:{gid} {}: {e}", p.display()))?;
    if meta.is_dir() {
        for e in std::fs::read_dir(p)? {
            chown_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
