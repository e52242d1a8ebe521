//! What crosses coordinators through the database, on two NOTIFY channels:
//! - `CHANNEL`, the live feed: each commit with feed items sends a NOTIFY (the feed
//!   table's trigger, migration 0008; payload: the writer's instance id); every other `PgStore` relays the new rows into its own
//!   broadcast. Both paths run under `write_lock` and only move `broadcast_head`
//!   forward, so each process broadcasts every item once, in cursor order.
//! - `WAKE_CHANNEL`, runner wake-ups: `publish_wake` (a new run, a stop, a requeue)
//!   sends a NOTIFY after the write committed; every other `PgStore` bumps `wake_in`,
//!   which its coordinator forwards to its parked long-polls. Bursts coalesce into one
//!   NOTIFY; a lost one only delays a runner until its poll times out.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

use sqlx::{postgres::PgListener, PgPool, Row};
use tokio::sync::{broadcast, watch, Mutex, Notify};

use aof_wire::sse::FeedItem;

pub(crate) const CHANNEL: &str = "aof_feed";
pub(crate) const WAKE_CHANNEL: &str = "aof_wake";

pub(crate) struct Shared {
    /// Random per process; our own notifications are ignored.
    pub instance: String,
    /// Held from BEGIN until the committed items are broadcast, and by the relay.
    pub write_lock: Mutex<()>,
    /// Highest cursor broadcast so far. Changed only under `write_lock`.
    pub broadcast_head: AtomicI64,
    /// Store → SSE subscribers. Sent to only under `write_lock`.
    pub feed_tx: broadcast::Sender<FeedItem>,
    /// Wake-ups to tell the other coordinators (a stored permit coalesces a burst).
    pub wake_out: Notify,
    /// Bumped on each wake-up from another coordinator, and after a lost connection.
    pub wake_in: watch::Sender<u64>,
}

impl Shared {
    fn bump_wake(&self) {
        self.wake_in.send_modify(|g| *g = g.wrapping_add(1));
    }
}

/// Runs for the store's life: one NOTIFY on `WAKE_CHANNEL` per burst of `publish_wake`.
pub(crate) async fn publish_wakes(pool: PgPool, shared: std::sync::Arc<Shared>) {
    loop {
        shared.wake_out.notified().await;
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(WAKE_CHANNEL)
            .bind(&shared.instance)
            .execute(&pool)
            .await;
        if let Err(e) = sent {
            // The other coordinators' runners then wait for their poll timeout.
            tracing::warn!(error = ?e, "runner wake-up: NOTIFY failed");
        }
    }
}

/// Broadcasts committed items above `broadcast_head` (below `until`, if given). The
/// caller holds `write_lock`. Errors are logged: subscribers then miss items live, and
/// the SSE layer's replay from the table still has them.
pub(crate) async fn catch_up(pool: &PgPool, shared: &Shared, until: Option<i64>) {
    let head = shared.broadcast_head.load(Ordering::Acquire);
    let rows = sqlx::query(
        "SELECT cursor, kind, session_id, data FROM feed \
         WHERE cursor > $1 AND ($2::bigint IS NULL OR cursor < $2) ORDER BY cursor",
    )
    .bind(head)
    .bind(until)
    .fetch_all(pool)
    .await;
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = ?e, "feed relay: reading other coordinators' items failed");
            return;
        }
    };
    for r in rows {
        let data: String = r.get("data");
        let cursor: i64 = r.get("cursor");
        let _ = shared.feed_tx.send(FeedItem {
            cursor,
            kind: r.get("kind"),
            session_id: r.get("session_id"),
            data: data.into(),
        });
        shared.broadcast_head.fetch_max(cursor, Ordering::AcqRel);
    }
}

/// Runs for the store's life: LISTEN, and on another instance's NOTIFY relay what it
/// committed or wake the runners. After a lost connection, when notifications may have
/// been missed, does both.
pub(crate) async fn relay(pool: PgPool, shared: std::sync::Arc<Shared>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = ?e, "feed relay: cannot connect; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen_all([CHANNEL, WAKE_CHANNEL]).await {
            tracing::warn!(error = ?e, "feed relay: LISTEN failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            let (feed, wake) = match listener.try_recv().await {
                Ok(Some(n)) if n.payload() == shared.instance => (false, false),
                Ok(Some(n)) => (n.channel() == CHANNEL, n.channel() == WAKE_CHANNEL),
                // The connection dropped (it reconnects on the next call): catch up.
                Ok(None) => (true, true),
                Err(e) => {
                    tracing::warn!(error = ?e, "feed relay: receive failed; reconnecting");
                    break;
                }
            };
            if wake {
                shared.bump_wake();
            }
            if feed {
                let _guard = shared.write_lock.lock().await;
                catch_up(&pool, &shared, None).await;
            }
        }
    }
}
