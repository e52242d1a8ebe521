//! aof-store-postgres: the `Store` on a PostgreSQL server (15+), for several
//! coordinators sharing one database.
//!
//! Every mutation runs in a `WriteTx` that holds the process's `write_lock` and, inside
//! the transaction, a database-wide advisory lock until COMMIT. Feed cursors and session
//! `seq`s are assigned under that lock, so their order is commit order on every
//! coordinator: a reader that sees cursor N has seen every cursor below N that will ever
//! exist (a rolled-back write leaves a gap, never a late arrival). The committed items
//! are broadcast while `write_lock` is still held, so live order equals cursor order.

mod admin;
mod audit;
mod browser_sessions;
mod callbacks;
mod events;
mod execute;
mod import;
mod keys;
mod leases;
mod live;
mod redact;
mod rows;
mod runners;
mod runs;
mod sessions;
mod stops;
#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{
    postgres::{PgArguments, PgConnectOptions, PgPoolOptions},
    PgPool, Postgres, Transaction,
};
use std::sync::{
    atomic::{AtomicI64, Ordering},
    Arc,
};

use tokio::sync::{broadcast, Mutex, MutexGuard};

use aof_store::{Fault, StoreError, StoreResult};
use aof_wire::sse::FeedItem;

pub use redact::redact_url;

/// Key of the advisory lock every write transaction takes (any constant unique to aof).
pub(crate) const WRITE_LOCK_KEY: i64 = 0x0a0f_5704_e001;

/// BEGIN and the write lock in one simple-query round trip (the key is a constant, so
/// nothing is interpolated from outside).
fn begin_locked() -> String {
    format!("BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")
}

/// Is `url` a PostgreSQL URL (`postgres://` or `postgresql://`)?
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

#[derive(Debug, Clone)]
pub struct PgOptions {
    /// A runner silent this long is `stale` (and may be replaced by a new instance).
    pub stale_after: chrono::Duration,
    /// Live feed buffer per subscriber before it is told to resync.
    pub feed_capacity: usize,
    /// Pool size (reads run in parallel; writes take turns on the write lock).
    pub max_connections: u32,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            stale_after: chrono::Duration::seconds(120),
            feed_capacity: 4096,
            max_connections: 8,
        }
    }
}

pub struct PgStore {
    pool: PgPool,
    shared: Arc<live::Shared>,
    /// Relays other coordinators' commits and wake-ups; aborted on drop.
    relay: tokio::task::JoinHandle<()>,
    /// Sends our runner wake-ups to the other coordinators; aborted on drop.
    wake_publisher: tokio::task::JoinHandle<()>,
    opts: PgOptions,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.relay.abort();
        self.wake_publisher.abort();
    }
}

/// Maps a database error like the SQLite store does: a full disk, a read-only or failing
/// server, or an unreachable one is `Storage` (nothing was written), the rest `Internal`.
pub(crate) fn internal(e: impl Into<anyhow::Error>) -> StoreError {
    let e = e.into();
    let unreachable = matches!(
        e.downcast_ref::<sqlx::Error>(),
        Some(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
    );
    let code = e
        .downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|d| d.code())
        .map(|c| c.into_owned());
    match code.as_deref() {
        // disk_full, and out of memory/connections/resources in general.
        Some("53100") => StoreError::storage(Fault::DatabaseDiskFull, e),
        // read_only_sql_transaction (hot standby), io_error and other system errors,
        // server shutting down.
        Some(c) if c == "25006" || c.starts_with("58") || c.starts_with("57P") => {
            StoreError::storage(Fault::DatabaseReadOnly, e)
        }
        _ if unreachable => StoreError::storage(Fault::DatabaseUnreachable, e),
        _ => StoreError::Internal(e),
    }
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

impl PgStore {
    /// Connects and applies the embedded migrations (sqlx serializes concurrent
    /// migrators with its own advisory lock, so coordinators may start together).
    pub async fn connect(url: &str, opts: PgOptions) -> StoreResult<PgStore> {
        let connect: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::InvalidUrl(redact_url(&e.to_string())))?;
        let instance = uuid::Uuid::new_v4().simple().to_string();
        // Named on every connection: the feed table's NOTIFY trigger sends it (0008).
        let connect = connect.options([("aof.instance", instance.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect)
            .await
            .map_err(internal)?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(internal)?;
        let (feed_tx, _) = broadcast::channel(opts.feed_capacity);
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(cursor), 0) FROM feed")
            .fetch_one(&pool)
            .await
            .map_err(internal)?;
        let shared = Arc::new(live::Shared {
            instance,
            write_lock: Mutex::new(()),
            broadcast_head: AtomicI64::new(head),
            feed_tx,
            wake_out: tokio::sync::Notify::new(),
            wake_in: tokio::sync::watch::channel(0).0,
        });
        let relay = tokio::spawn(live::relay(pool.clone(), shared.clone()));
        let wake_publisher = tokio::spawn(live::publish_wakes(pool.clone(), shared.clone()));
        Ok(PgStore {
            pool,
            shared,
            relay,
            wake_publisher,
            opts,
        })
    }

    pub(crate) async fn begin(&self) -> StoreResult<WriteTx<'_>> {
        let guard = self.shared.write_lock.lock().await;
        let tx = self
            .pool
            .begin_with(begin_locked())
            .await
            .map_err(internal)?;
        Ok(WriteTx {
            tx,
            _guard: guard,
            items: Vec::new(),
            store: self,
        })
    }

    /// Statements in order in one write transaction; the rows the last one changed.
    pub(crate) async fn exec<const N: usize>(
        &self,
        queries: [sqlx::query::Query<'_, Postgres, PgArguments>; N],
    ) -> StoreResult<u64> {
        let mut w = self.begin().await?;
        let mut n = 0;
        for q in queries {
            n = q
                .execute(&mut *w.tx)
                .await
                .map_err(internal)?
                .rows_affected();
        }
        w.commit().await?;
        Ok(n)
    }

    pub async fn close(&self) {
        // The relay holds its LISTEN connection for the store's life: the pool's close
        // would wait for it forever.
        self.relay.abort();
        self.wake_publisher.abort();
        self.pool.close().await;
    }
}

/// One write transaction plus the feed items it will publish on commit.
pub(crate) struct WriteTx<'a> {
    pub tx: Transaction<'static, Postgres>,
    _guard: MutexGuard<'a, ()>,
    items: Vec<FeedItem>,
    store: &'a PgStore,
}

impl WriteTx<'_> {
    /// Appends a non-event feed item (session_created, session_updated, …).
    pub async fn feed(
        &mut self,
        kind: &str,
        session_id: Option<&str>,
        data: impl serde::Serialize,
    ) -> StoreResult<i64> {
        let data = aof_wire::sse::payload(&data).map_err(internal)?;
        let cursor: i64 = sqlx::query_scalar(
            "INSERT INTO feed(kind, session_id, data) VALUES ($1, $2, $3) RETURNING cursor",
        )
        .bind(kind)
        .bind(session_id)
        .bind(&*data)
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
            store,
        } = self;
        // The feed inserts' trigger queued a NOTIFY (delivered at COMMIT) that wakes the
        // relay of every other coordinator.
        tx.commit().await.map_err(internal)?;
        store.publish(items).await;
        Ok(())
    }
}

impl PgStore {
    /// Broadcasts items just committed. The caller still holds `write_lock`.
    pub(crate) async fn publish(&self, items: Vec<FeedItem>) {
        let Some(first) = items.first().map(|i| i.cursor) else {
            return;
        };
        let shared = &self.shared;
        // Another coordinator committed below our first cursor and its relay has not
        // run yet: send its items first, so subscribers get cursor order. (A gap from
        // a rolled-back write costs one empty read.)
        if first > shared.broadcast_head.load(Ordering::Acquire) + 1 {
            live::catch_up(&self.pool, shared, Some(first)).await;
        }
        let last = items.last().map(|i| i.cursor).unwrap_or(first);
        for item in items {
            // No receivers is fine: nobody is watching.
            let _ = shared.feed_tx.send(item);
        }
        shared.broadcast_head.fetch_max(last, Ordering::AcqRel);
    }
}
