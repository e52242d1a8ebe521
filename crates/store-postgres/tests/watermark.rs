//! The feed watermark (`live.rs`, migration 0012) on a real PostgreSQL server: with no
//! database-wide lock, a cursor can commit after a larger one, so nothing above a cursor
//! held by an open transaction may reach a reader — not the replay (`feed_after`,
//! `feed_head`) and not the live feed — on any coordinator. These tests hold a cursor
//! open by hand (as a slow writer would) and fail if a later cursor gets past it.

use std::{sync::Arc, time::Duration};

use sqlx::{Connection, PgConnection};
use tokio::sync::broadcast::{self, error::TryRecvError};

use aof_store::{prelude::*, EventWrite};
use aof_store_postgres::{testing, PgOptions, PgStore};
use aof_wire::{sse::FeedItem, Event};

const PATIENCE: Duration = Duration::from_secs(30);

struct Setup {
    stores: Vec<Arc<PgStore>>,
    url: String,
}

async fn setup() -> Option<Setup> {
    let Some(base) = testing::base_url() else {
        eprintln!("skipped: AOF_TEST_DATABASE_URL is unset");
        return None;
    };
    let url = testing::fresh_database(&base).await.unwrap();
    let mut stores = Vec::new();
    for _ in 0..2 {
        let store = PgStore::connect(&url, PgOptions::default()).await.unwrap();
        stores.push(Arc::new(store));
    }
    stores[0]
        .create_run(aof_store::conformance::start("run_1", "ses_1"))
        .await
        .unwrap();
    Some(Setup { stores, url })
}

/// A writer that took cursor `held` and has not committed: its transaction id first,
/// then the cursor, as every AOF writer does.
async fn hold_a_cursor(url: &str) -> (PgConnection, i64) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut conn)
        .await
        .unwrap();
    let held: i64 = sqlx::query_scalar(
        "INSERT INTO feed(kind, data) VALUES ('held_by_test', '{}') RETURNING cursor",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    (conn, held)
}

/// Appends one event on `store` in the background; returns its task and, once it is in
/// the table (`list_events` reads the table, unbounded by the watermark), its cursor.
async fn append_behind(store: &Arc<PgStore>) -> (tokio::task::JoinHandle<()>, i64) {
    let s = store.clone();
    let task = tokio::spawn(async move {
        let write = EventWrite {
            event: Event::new("message", "ses_1"),
            run_id: None,
            idempotency_key: None,
            lease_token: None,
        };
        s.append_event("ses_1", write).await.unwrap();
    });
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let events = store.list_events("ses_1", None, None).await.unwrap();
        if let Some(e) = events.last() {
            return (task, e.id);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "append never committed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The cursors at or above `from` a subscriber has received so far.
fn received_from(sub: &mut broadcast::Receiver<FeedItem>, from: i64) -> Vec<i64> {
    let mut got = Vec::new();
    loop {
        match sub.try_recv() {
            Ok(item) if item.cursor >= from => got.push(item.cursor),
            Ok(_) => {}
            Err(TryRecvError::Empty) => return got,
            Err(e) => panic!("live feed: {e}"),
        }
    }
}

/// Receives until `want` has come (in any case within `PATIENCE`); the cursors at or
/// above `from` in arrival order.
async fn receive_until(sub: &mut broadcast::Receiver<FeedItem>, from: i64, want: i64) -> Vec<i64> {
    let mut got = Vec::new();
    while !got.contains(&want) {
        let item = tokio::time::timeout(PATIENCE, sub.recv())
            .await
            .expect("live feed stalled")
            .unwrap();
        if item.cursor >= from {
            got.push(item.cursor);
        }
    }
    got
}

async fn wait_for_head(store: &PgStore, at_least: i64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while store.feed_head().await.unwrap() < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "watermark never reached {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Nothing above a cursor held by an open transaction is visible on either store until
/// it commits; then both see the held cursor first and the later event after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cursor_held_open_holds_back_every_later_one_on_every_store() {
    let Some(Setup { stores, url }) = setup().await else {
        return;
    };
    let mut subs: Vec<_> = stores.iter().map(|s| s.subscribe()).collect();
    let (mut conn, held) = hold_a_cursor(&url).await;
    let (append, event) = append_behind(&stores[1]).await;
    assert!(event > held, "the later writer took a larger cursor");

    // The event is committed, but its cursor is above one that may still commit.
    for (n, store) in stores.iter().enumerate() {
        let head = store.feed_head().await.unwrap();
        assert!(
            head < held,
            "store {n}: head {head} passed held cursor {held}"
        );
        let replay = store.feed_after(0, None, 1000).await.unwrap();
        assert!(
            replay.iter().all(|i| i.cursor < held),
            "store {n}: replay passed held cursor {held}: {:?}",
            replay.iter().map(|i| i.cursor).collect::<Vec<_>>()
        );
        assert_eq!(received_from(&mut subs[n], held), Vec::<i64>::new());
    }

    sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
    for (n, store) in stores.iter().enumerate() {
        assert_eq!(
            receive_until(&mut subs[n], held, event).await,
            vec![held, event],
            "store {n}: live order is cursor order"
        );
        wait_for_head(store, event).await;
        let replay: Vec<i64> = (store.feed_after(held - 1, None, 1000).await.unwrap())
            .iter()
            .map(|i| i.cursor)
            .collect();
        assert_eq!(replay, vec![held, event], "store {n}: replay");
    }
    append.await.unwrap();
}

/// A held cursor that is rolled back leaves a gap: the later event is released, and the
/// held one never appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolled_back_cursor_leaves_a_gap_and_releases_the_rest() {
    let Some(Setup { stores, url }) = setup().await else {
        return;
    };
    let mut sub = stores[0].subscribe();
    let (mut conn, held) = hold_a_cursor(&url).await;
    let (append, event) = append_behind(&stores[0]).await;
    assert!(stores[0].feed_head().await.unwrap() < held);

    sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
    assert_eq!(receive_until(&mut sub, held, event).await, vec![event]);
    wait_for_head(&stores[0], event).await;
    let replay: Vec<i64> = (stores[0].feed_after(held - 1, None, 1000).await.unwrap())
        .iter()
        .map(|i| i.cursor)
        .collect();
    assert_eq!(replay, vec![event]);
    append.await.unwrap();
}
