//! aof-store-sqlite: the `Store` on an embedded SQLite file (WAL).
//!
//! One writer connection (`writer`, with group commit), several readers. Every mutation
//! runs in a `WriteTx`: the state change and its feed items commit together, then the
//! items are broadcast while the writer lock is still held, so live order equals cursor
//! order.

mod audit;
mod callbacks;
mod events;
mod keys;
mod leases;
mod maintenance;
mod rows;
mod runners;
mod runs;
mod sessions;
mod store_impl;
mod writer;

use std::{path::Path, str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    ConnectOptions, SqlitePool,
};
use tokio::sync::broadcast;

use aof_store::{StoreError, StoreResult};
use aof_wire::sse::FeedItem;

pub use aof_store::matching::satisfies;
pub(crate) use writer::WriteTx;

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
    /// Exactly one writer connection: SQLite has one writer anyway, and one connection
    /// makes cursor order equal commit order. It also owns the feed broadcast.
    writer: std::sync::Arc<writer::Writer>,
    readers: SqlitePool,
    /// Store → SSE subscribers. Written only under the writer lock.
    feed_tx: broadcast::Sender<FeedItem>,
    opts: SqliteOptions,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.writer.shut_down();
    }
}

pub(crate) fn internal(e: impl Into<anyhow::Error>) -> StoreError {
    let e = e.into();
    // Disk full (13), read-only (8) and I/O errors (10): the write was refused whole
    // (SQLite rolls back); say so instead of a bare 500.
    let code = e
        .downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .map(|c| c & 0xff);
    match code {
        Some(13) => StoreError::Storage {
            full: true,
            message: format!("the data disk is full: {e}"),
        },
        Some(8) | Some(10) => StoreError::Storage {
            full: false,
            message: format!("the data dir cannot be written: {e}"),
        },
        _ => StoreError::Internal(e),
    }
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path, opts: SqliteOptions) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                internal(anyhow::anyhow!(
                    "cannot create data dir {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let sync = match opts.durability {
            Durability::Normal => SqliteSynchronous::Normal,
            Durability::Full => SqliteSynchronous::Full,
        };
        let base = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .busy_timeout(Duration::from_secs(10))
            .pragma("foreign_keys", "OFF");
        // The writer is a bare connection owned by `writer::Writer`, not a pool: the
        // writer keeps it (and its open batch transaction) across requests.
        let mut conn = base.connect().await.map_err(internal)?;
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
        // No liveness ping per acquire: a local file connection does not go stale, and
        // the ping is one more trip to sqlx's connection thread (measured: single-event
        // ingest 1.45k → 3.1k/s when it went).
        let readers = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.read_only(true))
            .await
            .map_err(internal)?;
        let (feed_tx, _) = broadcast::channel(opts.feed_capacity);
        Ok(SqliteStore {
            writer: writer::Writer::new(conn, feed_tx.clone()),
            readers,
            feed_tx,
            opts,
        })
    }

    /// Starts a write job in the writer's (possibly shared) transaction.
    pub(crate) async fn begin(&self) -> StoreResult<WriteTx<'_>> {
        self.writer.begin(false).await
    }

    /// A write job of at most one writing statement whose every error is fatal: it needs
    /// no savepoint when it joins a batch (see `writer`).
    pub(crate) async fn begin_single(&self) -> StoreResult<WriteTx<'_>> {
        self.writer.begin(true).await
    }

    /// `(journal_mode, synchronous)` as the writer connection sees them (0 off, 1 normal, 2 full).
    pub async fn pragmas(&self) -> StoreResult<(String, i64)> {
        self.writer
            .with_conn(async |conn| {
                let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(internal)?;
                let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(internal)?;
                Ok((mode, sync))
            })
            .await
    }

    /// Commits anything batched and closes the readers; the writer connection closes
    /// when the store is dropped.
    pub async fn close(&self) {
        let _ = self.writer.with_conn(async |_| Ok(())).await;
        self.readers.close().await;
    }
}

/// Writes a consistent copy of the database at `db` to `out` (which must not exist),
/// while a coordinator may be writing to it: `VACUUM INTO` reads one snapshot on a
/// read-only connection, so nothing is locked for long and the copy is compact.
pub async fn backup(db: &Path, out: &Path) -> StoreResult<()> {
    if out.exists() {
        return Err(StoreError::Illegal(format!(
            "{} exists; backups never overwrite",
            out.display()
        )));
    }
    if !db.exists() {
        return Err(StoreError::Illegal(format!(
            "no database at {}",
            db.display()
        )));
    }
    let opts = SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .map_err(internal)?;
    let res = sqlx::query("VACUUM INTO ?")
        .bind(out.display().to_string())
        .execute(&pool)
        .await
        .map_err(internal);
    pool.close().await;
    res.map(|_| ())
}

impl WriteTx<'_> {
    /// Appends a non-event feed item (session_created, session_updated, …).
    pub async fn feed(
        &mut self,
        kind: &str,
        session_id: Option<&str>,
        data: serde_json::Value,
    ) -> StoreResult<i64> {
        let text = data.to_string();
        let cursor: i64 = sqlx::query_scalar(
            "INSERT INTO feed(kind, session_id, data) VALUES (?, ?, ?) RETURNING cursor",
        )
        .bind(kind)
        .bind(session_id)
        .bind(&text)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(internal)?;
        self.push_item(FeedItem {
            cursor,
            kind: kind.to_string(),
            session_id: session_id.map(str::to_string),
            data,
        });
        Ok(cursor)
    }
}
