//! What crosses coordinators through the database, and the order SSE clients see.
//!
//! **The feed watermark.** Writers on every coordinator commit in parallel (no
//! database-wide lock), so a feed cursor can commit after a larger one. `sequence` (one
//! task per store) releases cursors only up to a watermark below which every cursor is
//! final, so a reader that has seen cursor N never later meets a cursor below N. How the
//! watermark is proven is in migration 0012 (`aof_feed_probe`): a probe `(L, H)` says
//! "every transaction that can still commit a cursor <= L has an id < H", and it holds
//! once a later snapshot's oldest running id is >= H. Released items are broadcast in
//! cursor order; `released` only moves forward and is set before the items go out, so a
//! subscriber that replays from the table up to `released` and then reads the broadcast
//! misses nothing (see the SSE handler).
//!
//! Two NOTIFY channels:
//! - `CHANNEL`: each commit with feed items (the feed table's trigger, migration 0008;
//!   payload: the writer's instance id) wakes every other store's `sequence`, which
//!   reads the new rows from the table. Our own commits hand their items over directly.
//! - `WAKE_CHANNEL`, runner wake-ups: `publish_wake` (a new run, a stop, a requeue)
//!   sends a NOTIFY after the write committed; every other `PgStore` bumps `wake_in`,
//!   which its coordinator forwards to its parked long-polls. Bursts coalesce into one
//!   NOTIFY; a lost one only delays a runner until its poll times out.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use sqlx::{postgres::PgListener, ConnectOptions, PgConnection, PgPool, Row};
use tokio::sync::{broadcast, watch, Notify};

use aof_wire::sse::FeedItem;

pub(crate) const CHANNEL: &str = "aof_feed";
pub(crate) const WAKE_CHANNEL: &str = "aof_wake";

/// Unresolved probes kept; beyond this the newest is replaced (a release waits longer,
/// nothing is lost).
const MAX_PROBES: usize = 32;
/// Re-probe delays while something is unresolved and no commit wakes us: a transaction
/// that writes no feed row (or one on another database of the cluster) ends silently.
const RETRY_FIRST: Duration = Duration::from_millis(2);
const RETRY_MAX: Duration = Duration::from_millis(100);
/// How long a write waits for its own feed items to be released.
const READ_YOUR_WRITES: Duration = Duration::from_secs(2);
/// A watermark held back this long is logged (a long transaction on the cluster).
const STALL_WARN: Duration = Duration::from_secs(5);

pub(crate) struct Shared {
    /// Random per process; our own notifications are ignored.
    pub instance: String,
    /// Every cursor at or below it is final and has been broadcast (or is being).
    pub released: watch::Sender<i64>,
    /// Store → SSE subscribers, in cursor order; sent to only by `sequence`.
    pub feed_tx: broadcast::Sender<FeedItem>,
    /// Items of our own commits, waiting for the watermark.
    pub held: Mutex<BTreeMap<i64, FeedItem>>,
    /// Something committed (here or on another coordinator): `sequence` probes.
    pub committed: Notify,
    /// Wake-ups to tell the other coordinators (a stored permit coalesces a burst).
    pub wake_out: Notify,
    /// Bumped on each wake-up from another coordinator, and after a lost connection.
    pub wake_in: watch::Sender<u64>,
}

impl Shared {
    pub fn new(instance: String, released: i64, feed_capacity: usize) -> Shared {
        Shared {
            instance,
            released: watch::channel(released).0,
            feed_tx: broadcast::channel(feed_capacity).0,
            held: Mutex::new(BTreeMap::new()),
            committed: Notify::new(),
            wake_out: Notify::new(),
            wake_in: watch::channel(0).0,
        }
    }

    fn bump_wake(&self) {
        self.wake_in.send_modify(|g| *g = g.wrapping_add(1));
    }

    pub fn released(&self) -> i64 {
        *self.released.borrow()
    }

    /// Hands over the items of a transaction that just committed, and waits (at most
    /// `READ_YOUR_WRITES`) until they are released: a write that has answered is then in
    /// `feed_after` and on every live stream of this coordinator, as with one writer.
    pub async fn committed(&self, items: Vec<FeedItem>) {
        let Some(last) = items.iter().map(|i| i.cursor).max() else {
            return;
        };
        let mut released_rx = self.released.subscribe();
        {
            let released = self.released();
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            // At or below `released`: `sequence` already read it from the table.
            held.extend(
                items
                    .into_iter()
                    .filter(|i| i.cursor > released)
                    .map(|i| (i.cursor, i)),
            );
        }
        self.committed.notify_one();
        let released = released_rx.wait_for(|r| *r >= last);
        // Past the bound (a long transaction elsewhere holds the watermark back) the
        // write answers anyway; its items follow when the watermark moves.
        let _ = tokio::time::timeout(READ_YOUR_WRITES, released).await;
    }
}

/// One `aof_feed_probe()`: cursors <= `last` are final once `oldest` reaches `horizon`.
#[derive(Debug, Clone, Copy)]
struct Probe {
    last: i64,
    horizon: i64,
}

async fn probe<'c, E: sqlx::PgExecutor<'c>>(db: E) -> sqlx::Result<(Probe, i64)> {
    let row = sqlx::query("SELECT last_cursor, horizon, oldest FROM aof_feed_probe()")
        .fetch_one(db)
        .await?;
    let p = Probe {
        last: row.get("last_cursor"),
        horizon: row.get("horizon"),
    };
    Ok((p, row.get("oldest")))
}

/// A watermark to start from: probes until one resolves (at once, unless a transaction
/// is running on the cluster).
pub(crate) async fn initial_watermark(pool: &PgPool) -> sqlx::Result<i64> {
    let started = tokio::time::Instant::now();
    let (first, _) = probe(pool).await?;
    let mut delay = RETRY_FIRST;
    let mut warned = false;
    loop {
        let (_, oldest) = probe(pool).await?;
        if oldest >= first.horizon {
            return Ok(first.last);
        }
        if !warned && started.elapsed() > STALL_WARN {
            warned = true;
            tracing::warn!(
                oldest,
                "feed watermark: waiting for a long transaction on the PostgreSQL cluster"
            );
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
    }
}

/// Runs for the store's life: on each commit (or while a probe is unresolved, on a
/// timer), probes, and broadcasts the items up to the newest resolved probe. On its own
/// connection: writers waiting for the watermark must not also wait for a pooled one.
pub(crate) async fn sequence(pool: PgPool, shared: Arc<Shared>) {
    let mut conn: Option<PgConnection> = None;
    let mut probes: VecDeque<Probe> = VecDeque::new();
    let mut delay = RETRY_FIRST;
    let mut stalled_since: Option<tokio::time::Instant> = None;
    loop {
        if probes.is_empty() {
            shared.committed.notified().await;
        } else {
            tokio::select! {
                _ = shared.committed.notified() => {}
                _ = tokio::time::sleep(delay) => delay = (delay * 2).min(RETRY_MAX),
            }
        }
        let db = match conn.as_mut() {
            Some(c) => c,
            None => match pool.connect_options().connect().await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tracing::warn!(error = ?e, "feed watermark: cannot connect; retrying");
                    tokio::time::sleep(RETRY_MAX).await;
                    shared.committed.notify_one();
                    continue;
                }
            },
        };
        let (p, oldest) = match probe(&mut *db).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = ?e, "feed watermark: probe failed; reconnecting");
                conn = None;
                tokio::time::sleep(RETRY_MAX).await;
                shared.committed.notify_one();
                continue;
            }
        };
        if probes.len() >= MAX_PROBES {
            probes.pop_back();
        }
        probes.push_back(p);
        // Horizons never decrease, so probes resolve front to back.
        let mut upto = None;
        while probes.front().is_some_and(|p| oldest >= p.horizon) {
            upto = probes.pop_front().map(|p| p.last);
        }
        match upto {
            Some(upto) => {
                delay = RETRY_FIRST;
                stalled_since = None;
                if let Err(e) = release(db, &shared, upto).await {
                    tracing::warn!(error = ?e, "feed watermark: reading the feed failed");
                    conn = None;
                    // Resolved already (horizon 0): released on the next round.
                    probes.push_front(Probe {
                        last: upto,
                        horizon: 0,
                    });
                    shared.committed.notify_one();
                }
            }
            None => {
                let since = *stalled_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > STALL_WARN {
                    tracing::warn!(
                        oldest,
                        "feed watermark: held back by a long transaction on the PostgreSQL \
                         cluster; live events wait for it to end"
                    );
                    stalled_since = Some(tokio::time::Instant::now());
                }
            }
        }
    }
}

/// Broadcasts the items in `(released, upto]`, in cursor order: our own commits' items
/// when they cover the range, else the table's rows (another coordinator's commits, or
/// a rolled-back cursor that left a gap).
async fn release(db: &mut PgConnection, shared: &Shared, upto: i64) -> sqlx::Result<()> {
    let head = shared.released();
    if upto <= head {
        return Ok(());
    }
    let mine: Vec<FeedItem> = {
        let mut held = shared.held.lock().unwrap_or_else(|e| e.into_inner());
        let rest = held.split_off(&(upto + 1));
        let taken = std::mem::replace(&mut *held, rest);
        taken.into_values().filter(|i| i.cursor > head).collect()
    };
    let covered =
        mine.len() as i64 == upto - head && mine.first().is_none_or(|i| i.cursor == head + 1);
    let items = if covered {
        mine
    } else {
        let rows = sqlx::query(
            "SELECT cursor, kind, session_id, data FROM feed \
             WHERE cursor > $1 AND cursor <= $2 ORDER BY cursor",
        )
        .bind(head)
        .bind(upto)
        .fetch_all(db)
        .await;
        let rows = match rows {
            Ok(r) => r,
            Err(e) => {
                // Put ours back for the next try.
                let mut held = shared.held.lock().unwrap_or_else(|e| e.into_inner());
                held.extend(mine.into_iter().map(|i| (i.cursor, i)));
                return Err(e);
            }
        };
        rows.iter()
            .map(|r| FeedItem {
                cursor: r.get("cursor"),
                kind: r.get("kind"),
                session_id: r.get("session_id"),
                data: r.get::<String, _>("data").into(),
            })
            .collect()
    };
    // Before the items go out: a subscriber that reads `released` after this replays
    // them from the table; one that subscribed before receives them below.
    shared.released.send_replace(upto);
    for item in items {
        // No receivers is fine: nobody is watching.
        let _ = shared.feed_tx.send(item);
    }
    Ok(())
}

/// Runs for the store's life: one NOTIFY on `WAKE_CHANNEL` per burst of `publish_wake`.
pub(crate) async fn publish_wakes(pool: PgPool, shared: Arc<Shared>) {
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

/// Runs for the store's life: LISTEN; another instance's feed NOTIFY wakes `sequence`,
/// its wake NOTIFY wakes the runners. After a lost connection, when notifications may
/// have been missed, does both.
pub(crate) async fn relay(pool: PgPool, shared: Arc<Shared>) {
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
                shared.committed.notify_one();
            }
        }
    }
}
