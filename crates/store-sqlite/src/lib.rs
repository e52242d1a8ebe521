//! aof-store-sqlite: the `Store` on an embedded SQLite file (WAL).
//!
//! One writer connection on its own thread (`db`, with group commit), several readers
//! (rusqlite; sqlx only runs the migrations). Every mutation is a job on the writer: the
//! state change and its feed items commit together, then the items are broadcast in
//! commit order, so live order equals cursor order.

mod admin;
mod approvals;
mod audit;
mod browser_sessions;
mod callbacks;
mod db;
mod events;
mod execute;
mod files;
mod import;
mod keys;
mod leases;
mod maintenance;
pub mod reference;
mod rows;
mod runners;
mod runs;
mod sessions;
mod stops;

use std::{path::Path, str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode},
    ConnectOptions, Connection,
};
use tokio::sync::broadcast;

use aof_store::{Fault, StoreError, StoreResult};
use aof_wire::sse::FeedItem;

pub use aof_store::matching::satisfies;
pub(crate) use db::Tx;

/// How hard each commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=NORMAL` in WAL: survives a crash of the process (kill -9); the
    /// last commits may be lost on power loss or an OS crash.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is fsynced; also survives power loss.
    Full,
}

impl FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "normal" => Ok(Durability::Normal),
            "full" => Ok(Durability::Full),
            other => Err(format!("unknown durability '{other}' (normal or full)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub durability: Durability,
    /// A runner silent this long is `stale` (and may be replaced by a new instance).
    pub stale_after: chrono::Duration,
    /// Live feed buffer per subscriber before it is told to resync.
    pub feed_capacity: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::Normal,
            stale_after: chrono::Duration::seconds(120),
            feed_capacity: 4096,
        }
    }
}

pub struct SqliteStore {
    /// Exactly one writer connection, on its own thread: SQLite has one writer anyway,
    /// and one connection makes cursor order equal commit order. It also publishes the
    /// feed broadcast, after each commit.
    writer: db::Writer,
    readers: db::Readers,
    /// Store → SSE subscribers. Sent to only by the writer thread.
    feed_tx: broadcast::Sender<FeedItem>,
    opts: SqliteOptions,
}

pub(crate) fn internal(e: impl Into<anyhow::Error>) -> StoreError {
    let e = e.into();
    // Disk full (13), read-only (8) and I/O errors (10): the write was refused whole
    // (SQLite rolls back); say so instead of a bare 500.
    let code = e
        .downcast_ref::<rusqlite::Error>()
        .and_then(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) => Some(f.extended_code),
            _ => None,
        })
        .or_else(|| {
            e.downcast_ref::<sqlx::Error>()
                .and_then(|e| e.as_database_error())
                .and_then(|d| d.code())
                .and_then(|c| c.parse::<i32>().ok())
        })
        .map(|c| c & 0xff);
    match code {
        Some(13) => StoreError::storage(Fault::DataDiskFull, e),
        Some(8) | Some(10) => StoreError::storage(Fault::DataDirReadOnly, e),
        _ => StoreError::Internal(e),
    }
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Creates the file if needed and applies the migrations (sqlx's migrator, so files
/// written by earlier versions keep their migration history).
async fn migrate(path: &Path) -> StoreResult<()> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(internal)?;
    // A new file gets incremental auto-vacuum (WAL mode already wrote its header, so
    // the setting needs a VACUUM, instant while empty); `maintenance.rs` converts
    // older files at their first purge.
    let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master")
        .fetch_one(&mut conn)
        .await
        .map_err(internal)?;
    if tables == 0 {
        sqlx::raw_sql("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
            .execute(&mut conn)
            .await
            .map_err(internal)?;
    }
    sqlx::migrate!("./migrations")
        .run(&mut conn)
        .await
        .map_err(internal)?;
    conn.close().await.map_err(internal)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path, opts: SqliteOptions) -> StoreResult<SqliteStore> {
        // Before anything touches the file (its mode, a migration): the AOF reference's
        // database is never changed in place.
        let p = path.to_path_buf();
        let refdb = tokio::task::spawn_blocking(move || reference::is_reference_db(&p))
            .await
            .map_err(internal)?;
        match refdb {
            Ok(false) => {}
            Ok(true) => return Err(StoreError::ForeignSchema(path.to_path_buf())),
            Err(e) => {
                return Err(internal(anyhow::anyhow!(
                    "{e:#}; if this is a volume of the AOF reference, make it readable by this user (chown), then see `aof import --help`"
                )))
            }
        }
        // Private before SQLite creates anything in it (see `files`).
        let p = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            files::private_store(&p).map_err(|e| {
                internal(anyhow::anyhow!(
                    "cannot create the database {} or its data dir: {e}",
                    p.display()
                ))
            })
        })
        .await
        .map_err(internal)??;
        migrate(path).await?;
        let (p, durability) = (path.to_path_buf(), opts.durability);
        let conn = tokio::task::spawn_blocking(move || db::open_writer(&p, durability))
            .await
            .map_err(internal)??;
        let (feed_tx, _) = broadcast::channel(opts.feed_capacity);
        Ok(SqliteStore {
            writer: db::Writer::start(conn, feed_tx.clone())?,
            readers: db::Readers::new(path, READERS),
            feed_tx,
            opts,
        })
    }

    /// Runs `f` as one write job in the writer's (possibly shared) transaction; returns
    /// once that transaction is committed. `f`'s error rolls back only its statements.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.writer.write(f).await
    }

    /// Runs `f` on a read-only connection (a consistent snapshot per statement, or per
    /// transaction if `f` opens one).
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.readers.read(f).await
    }

    /// Runs a small read on the hot path (a poll, a claim) on the writer thread instead:
    /// the writer's page cache stays warm, while a reader connection re-reads every page
    /// changed since its previous read, and no blocking-pool hop is taken. Answered after
    /// the batch it joined commits, so it never reports what is not durable.
    pub(crate) async fn read_hot<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.writer.write(move |w| f(w)).await
    }

    /// One cached statement on a reader, its rows mapped by `f`.
    pub(crate) async fn query<T: Send + 'static, P: rusqlite::Params + Send + 'static>(
        &self,
        sql: &'static str,
        params: P,
        f: fn(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> StoreResult<Vec<T>> {
        self.read(move |c| {
            c.prepare_cached(sql)
                .and_then(|mut st| st.query_map(params, f)?.collect())
                .map_err(internal)
        })
        .await
    }

    /// `query` for at most one row (a key lookup, `LIMIT 1`, an aggregate).
    pub(crate) async fn query_opt<T: Send + 'static, P: rusqlite::Params + Send + 'static>(
        &self,
        sql: &'static str,
        params: P,
        f: fn(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> StoreResult<Option<T>> {
        Ok(self.query(sql, params, f).await?.into_iter().next())
    }

    /// One cached statement as its own write job; the number of rows it changed.
    pub(crate) async fn exec<P: rusqlite::Params + Send + 'static>(
        &self,
        sql: &'static str,
        params: P,
    ) -> StoreResult<usize> {
        self.write(move |w| {
            w.prepare_cached(sql)
                .and_then(|mut st| st.execute(params))
                .map_err(internal)
        })
        .await
    }

    /// `(journal_mode, synchronous, wal_autocheckpoint)` as the writer connection sees
    /// them (synchronous: 0 off, 1 normal, 2 full; autocheckpoint in pages).
    pub async fn pragmas(&self) -> StoreResult<(String, i64, i64)> {
        self.writer
            .bare(|conn| {
                let int = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
                let mode = conn.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0));
                Ok((
                    mode.map_err(internal)?,
                    int("PRAGMA synchronous").map_err(internal)?,
                    int("PRAGMA wal_autocheckpoint").map_err(internal)?,
                ))
            })
            .await
    }

    /// Commits anything batched; the connections close when the store is dropped.
    pub async fn close(&self) {
        let _ = self.writer.bare(|_| Ok(())).await;
    }
}

/// Reader connections at most: two cores here, and reads are short.
const READERS: usize = 4;

/// Writes a consistent copy of the database at `db` to `out` (which must not exist),
/// while a coordinator may be writing to it: `VACUUM INTO` reads one snapshot on a
/// read-only connection, so nothing is locked for long and the copy is compact.
pub async fn backup(db: &Path, out: &Path) -> StoreResult<()> {
    if out.exists() {
        return Err(StoreError::BackupExists(out.to_path_buf()));
    }
    if !db.exists() {
        return Err(StoreError::NoDatabase(db.to_path_buf()));
    }
    let (db, out) = (db.to_path_buf(), out.to_path_buf());
    tokio::task::spawn_blocking(move || {
        // The copy is as private as the database: created 0600 (empty, which VACUUM
        // INTO accepts) instead of with the umask's mode.
        files::private_db(&out)
            .map_err(|e| internal(anyhow::anyhow!("cannot create {}: {e}", out.display())))?;
        let copy = || {
            let conn = rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .map_err(internal)?;
            conn.busy_timeout(Duration::from_secs(30))
                .map_err(internal)?;
            conn.execute("VACUUM INTO ?1", [out.display().to_string()])
                .map_err(internal)?;
            Ok(())
        };
        copy().inspect_err(|_| {
            let _ = std::fs::remove_file(&out);
        })
    })
    .await
    .map_err(internal)?
}

impl Tx<'_> {
    /// Appends a non-event feed item (session_created, session_updated, …).
    pub(crate) fn feed(
        &mut self,
        kind: &str,
        session_id: Option<&str>,
        data: impl serde::Serialize,
    ) -> StoreResult<i64> {
        let data = aof_wire::sse::payload(&data).map_err(internal)?;
        self.prepare_cached("INSERT INTO feed(kind, session_id, data) VALUES (?, ?, ?)")
            .and_then(|mut st| st.execute((kind, session_id, &*data)))
            .map_err(internal)?;
        let cursor = self.last_insert_rowid();
        self.push_item(FeedItem {
            cursor,
            kind: kind.to_string(),
            session_id: session_id.map(str::to_string),
            data,
        });
        Ok(cursor)
    }
}
