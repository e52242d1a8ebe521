//! aof-store-sqlite: the `Store` on an embedded SQLite file (WAL).
//!
//! One writer connection behind `write_lock`, several readers. Every mutation runs in a
//! `WriteTx`: the state change and its feed items commit together, then the items are
//! broadcast while the lock is still held, so live order equals cursor order.

mod callbacks;
mod events;
mod keys;
mod matching;
mod rows;
mod runners;
mod runs;
mod sessions;
mod store_impl;

use std::{path::Path, str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    Sqlite, SqlitePool, Transaction,
};
use tokio::sync::{broadcast, Mutex, MutexGuard};

use aof_store::{StoreError, StoreResult};
use aof_wire::sse::FeedItem;

pub use matching::satisfies;

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
    /// Exactly one connection: SQLite has one writer anyway, and one connection makes
    /// cursor order equal commit order.
    writer: SqlitePool,
    readers: SqlitePool,
    /// Held from BEGIN until the committed items are broadcast. Async lock: held across awaits.
    write_lock: Mutex<()>,
    /// Store → SSE subscribers. Written only under `write_lock`.
    feed_tx: broadcast::Sender<FeedItem>,
    opts: SqliteOptions,
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
        // No liveness ping per acquire: a local file connection does not go stale, and
        // the ping is one more trip to sqlx's connection thread on every write (measured:
        // single-event ingest 1.45k → 3.1k/s).
        let writer = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.clone())
            .await
            .map_err(internal)?;
        sqlx::migrate!("./migrations")
            .run(&writer)
            .await
            .map_err(internal)?;
        let readers = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.read_only(true))
            .await
            .map_err(internal)?;
        let (feed_tx, _) = broadcast::channel(opts.feed_capacity);
        Ok(SqliteStore {
            writer,
            readers,
            write_lock: Mutex::new(()),
            feed_tx,
            opts,
        })
    }

    pub(crate) async fn begin(&self) -> StoreResult<WriteTx<'_>> {
        let guard = self.write_lock.lock().await;
        let tx = self.writer.begin().await.map_err(internal)?;
        Ok(WriteTx {
            tx,
            _guard: guard,
            items: Vec::new(),
            feed_tx: &self.feed_tx,
        })
    }

    /// `(journal_mode, synchronous)` as the writer connection sees them (0 off, 1 normal, 2 full).
    pub async fn pragmas(&self) -> StoreResult<(String, i64)> {
        let mut conn = self.writer.acquire().await.map_err(internal)?;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .map_err(internal)?;
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .map_err(internal)?;
        Ok((mode, sync))
    }

    pub async fn close(&self) {
        self.writer.close().await;
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

/// One write transaction plus the feed items it will publish on commit.
pub(crate) struct WriteTx<'a> {
    pub tx: Transaction<'static, Sqlite>,
    _guard: MutexGuard<'a, ()>,
    items: Vec<FeedItem>,
    feed_tx: &'a broadcast::Sender<FeedItem>,
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
        self.items.push(FeedItem {
            cursor,
            kind: kind.to_string(),
            session_id: session_id.map(str::to_string),
            data,
        });
        Ok(cursor)
    }

    pub(crate) fn push_item(&mut self, item: FeedItem) {
        self.items.push(item);
    }

    pub async fn commit(self) -> StoreResult<()> {
        let WriteTx {
            tx,
            _guard,
            items,
            feed_tx,
        } = self;
        tx.commit().await.map_err(internal)?;
        for item in items {
            // No receivers is fine: nobody is watching.
            let _ = feed_tx.send(item);
        }
        Ok(())
    }
}
