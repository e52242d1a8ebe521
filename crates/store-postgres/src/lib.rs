//! aof-store-postgres: the `Store` on a PostgreSQL server (15+), for several
//! coordinators sharing one database.
//!
//! Writes run in parallel, on this coordinator and on every other one: there is no
//! database-wide lock. What keeps them correct is row locks, always taken in one order —
//! **runner row, then run rows (by `run_id`), then session rows** — so two transactions
//! never wait on each other in a circle:
//! - a write that decides from a run's row reads it `FOR UPDATE` (a report, a stop);
//!   an event fenced by a lease reads it `FOR SHARE`; a claim is one compare-and-set
//!   that skips a run another transaction holds (`SKIP LOCKED`); sweeps lock many runs
//!   in `run_id` order;
//! - a session's events take the session row before their cursor, so one session's
//!   cursors and `seq`s are in commit order.
//!
//! Across sessions, cursors may commit out of order; readers see the feed only up to the
//! watermark kept by `live` (migration 0012 says why it is safe), so a reader that has
//! seen cursor N never later meets a cursor below N (a rolled-back write leaves a gap).

mod admin;
mod approvals;
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
use std::sync::Arc;

use aof_store::{Fault, StoreError, StoreResult};
use aof_wire::sse::FeedItem;

pub use redact::redact_url;

/// BEGIN, and the transaction's id taken before any feed cursor (migration 0012), in
/// one simple-query round trip.
const BEGIN_WRITE: &str = "BEGIN; SELECT pg_current_xact_id()";

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
    /// Pool size: reads and writes run in parallel, plus the watermark's probes.
    pub max_connections: u32,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            stale_after: chrono::Duration::seconds(120),
            feed_capacity: 4096,
            max_connections: 16,
        }
    }
}

pub struct PgStore {
    pool: PgPool,
    shared: Arc<live::Shared>,
    /// Relays other coordinators' commits and wake-ups; aborted on drop.
    relay: tokio::task::JoinHandle<()>,
    /// Releases the feed up to the watermark (`live::sequence`); aborted on drop.
    sequencer: tokio::task::JoinHandle<()>,
    /// Sends our runner wake-ups to the other coordinators; aborted on drop.
    wake_publisher: tokio::task::JoinHandle<()>,
    opts: PgOptions,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.relay.abort();
        self.sequencer.abort();
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
        // deadlock_detected, serialization_failure: aborted whole, retryable.
        Some("40P01" | "40001") => StoreError::storage(Fault::DatabaseConflict, e),
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
        let head = live::initial_watermark(&pool).await.map_err(internal)?;
        let shared = Arc::new(live::Shared::new(instance, head, opts.feed_capacity));
        let relay = tokio::spawn(live::relay(pool.clone(), shared.clone()));
        let sequencer = tokio::spawn(live::sequence(pool.clone(), shared.clone()));
        let wake_publisher = tokio::spawn(live::publish_wakes(pool.clone(), shared.clone()));
        Ok(PgStore {
            pool,
            shared,
            relay,
            sequencer,
            wake_publisher,
            opts,
        })
    }

    pub(crate) async fn begin(&self) -> StoreResult<WriteTx<'_>> {
        let tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(internal)?;
        Ok(WriteTx {
            tx,
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

    /// The feed watermark: every cursor at or below it is final (`live`).
    pub(crate) fn released(&self) -> i64 {
        self.shared.released()
    }

    pub async fn close(&self) {
        // The relay holds its LISTEN connection for the store's life: the pool's close
        // would wait for it forever.
        self.relay.abort();
        self.sequencer.abort();
        self.wake_publisher.abort();
        self.pool.close().await;
    }
}

/// One write transaction plus the feed items it will publish on commit.
pub(crate) struct WriteTx<'a> {
    pub tx: Transaction<'static, Postgres>,
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
        let WriteTx { tx, items, store } = self;
        // The feed inserts' trigger queued a NOTIFY (delivered at COMMIT) that wakes the
        // other coordinators' sequencers.
        tx.commit().await.map_err(internal)?;
        store.shared.committed(items).await;
        Ok(())
    }
}
