//! The live feed across coordinators: each commit with feed items sends a NOTIFY on
//! `CHANNEL` (payload: the writer's instance id); every other `PgStore` relays the new
//! rows into its own broadcast. Both paths run under `write_lock` and only move
//! `broadcast_head` forward, so each process broadcasts every item once, in cursor order.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

use sqlx::{postgres::PgListener, PgPool, Row};
use tokio::sync::{broadcast, Mutex};

use aof_wire::sse::FeedItem;

pub(crate) const CHANNEL: &str = "aof_feed";

pub(crate) struct Shared {
    /// Random per process; our own notifications are ignored.
    pub instance: String,
    /// Held from BEGIN until the committed items are broadcast, and by the relay.
    pub write_lock: Mutex<()>,
    /// Highest cursor broadcast so far. Changed only under `write_lock`.
    pub broadcast_head: AtomicI64,
    /// Store → SSE subscribers. Sent to only under `write_lock`.
    pub feed_tx: broadcast::Sender<FeedItem>,
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
        let Ok(data) = serde_json::from_str(&data) else {
            continue;
        };
        let cursor: i64 = r.get("cursor");
        let _ = shared.feed_tx.send(FeedItem {
            cursor,
            kind: r.get("kind"),
            session_id: r.get("session_id"),
            data,
        });
        shared.broadcast_head.fetch_max(cursor, Ordering::AcqRel);
    }
}

/// Runs for the store's life: LISTEN, and on another instance's NOTIFY (or after a lost
/// connection, when notifications may have been missed) relay what it committed.
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
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = ?e, "feed relay: LISTEN failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            let relay_now = match listener.try_recv().await {
                Ok(Some(n)) => n.payload() != shared.instance,
                // The connection dropped (it reconnects on the next call): catch up.
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!(error = ?e, "feed relay: receive failed; reconnecting");
                    break;
                }
            };
            if relay_now {
                let _guard = shared.write_lock.lock().await;
                catch_up(&pool, &shared, None).await;
            }
        }
    }
}
