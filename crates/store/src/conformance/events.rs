//! Events (append, idempotency, fencing, listing, batches) and the feed (cursor order,
//! replay after a cursor, live delivery).

use std::time::Duration as StdDuration;

use aof_core::SessionStatus;
use aof_wire::sse::FeedItem;

use super::*;

fn leased(write: EventWrite, rec: &RunRecord) -> EventWrite {
    EventWrite {
        run_id: Some(rec.run.run_id.clone()),
        lease_token: rec.lease_token.clone(),
        ..write
    }
}

pub async fn events_append_numbers_events_per_session(store: &dyn Store) {
    store.create_run(start("r1", "s1")).await.unwrap();
    store.create_run(start("r2", "s2")).await.unwrap();
    let mut stored = Vec::new();
    for (s, text) in [("s1", "a"), ("s2", "x"), ("s1", "b"), ("s1", "c")] {
        let write = EventWrite {
            run_id: Some(s.replace('s', "r")),
            ..message(s, text, None)
        };
        let e = store.append_event(s, write).await.unwrap().expect("stored");
        assert_eq!(e.event.text().as_deref(), Some(text));
        stored.push(e);
    }
    let seqs: Vec<i64> = stored.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 1, 2, 3], "1, 2, 3… per session, without gaps");
    assert!(
        stored.windows(2).all(|w| w[0].id < w[1].id),
        "cursors increase"
    );
    let s1: Vec<_> = stored
        .iter()
        .filter(|e| e.event.session_id == "s1")
        .cloned()
        .collect();
    assert_eq!(events(store, "s1").await, s1, "listed as stored");
    assert_eq!(texts(&events(store, "s2").await), ["x"]);
    assert!(s1.iter().all(|e| e.run_id.as_deref() == Some("r1")));
    let err = refused(store.append_event("nope", message("nope", "a", None)).await);
    assert!(matches!(err, StoreError::SessionNotFound { .. }), "{err:?}");
    assert!(events(store, "nope").await.is_empty());
}

pub async fn events_duplicate_idempotency_key_stores_nothing(store: &dyn Store) {
    store.create_run(start("r1", "s1")).await.unwrap();
    store.create_run(start("r2", "s2")).await.unwrap();
    let first = store
        .append_event("s1", message("s1", "first", Some("k")))
        .await
        .unwrap();
    assert!(first.is_some());
    let head = store.feed_head().await.unwrap();
    let again = store
        .append_event("s1", message("s1", "second", Some("k")))
        .await
        .unwrap();
    assert_eq!(again, None, "the key was stored before");
    assert_eq!(texts(&events(store, "s1").await), ["first"]);
    assert_eq!(store.feed_head().await.unwrap(), head, "nothing fed");
    // Keys are per session.
    let other = store
        .append_event("s2", message("s2", "other", Some("k")))
        .await
        .unwrap();
    assert_eq!(other.map(|e| e.seq), Some(1));
}

pub async fn events_lease_token_must_hold_the_named_run(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    let ok = store
        .append_event("s1", leased(message("s1", "mine", Some("k1")), &rec))
        .await
        .unwrap();
    assert_eq!(ok.and_then(|e| e.run_id).as_deref(), Some("r1"));
    let before = snapshot(store, "s1", "r1").await;
    let no_run = EventWrite {
        lease_token: rec.lease_token.clone(),
        ..message("s1", "no run", None)
    };
    let err = refused(store.append_event("s1", no_run).await);
    assert!(matches!(err, StoreError::Illegal { .. }), "{err:?}");
    let bogus = EventWrite {
        lease_token: Some("lease_bogus".into()),
        ..leased(message("s1", "bogus", None), &rec)
    };
    let err = refused(store.append_event("s1", bogus).await);
    assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
    let missing = EventWrite {
        run_id: Some("nope".into()),
        ..leased(message("s1", "missing", None), &rec)
    };
    let err = refused(store.append_event("s1", missing).await);
    assert!(matches!(err, StoreError::RunNotFound), "{err:?}");
    assert_eq!(snapshot(store, "s1", "r1").await, before, "nothing written");

    // Once the run ended its lease writes nothing new, but the retry of an event it
    // stored is still answered as a duplicate.
    report(store, &rec, completed()).await;
    let late = leased(message("s1", "late", None), &rec);
    let err = refused(store.append_event("s1", late).await);
    assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
    let retry = leased(message("s1", "mine", Some("k1")), &rec);
    assert_eq!(store.append_event("s1", retry).await.unwrap(), None);
    assert_eq!(
        event_types(store, "s1").await,
        ["run_start", "message", "run_completed"]
    );
}

pub async fn events_list_after_and_limit(store: &dyn Store) {
    store.create_run(start("r1", "s1")).await.unwrap();
    for i in 0..5 {
        let text = format!("e{i}");
        store
            .append_event("s1", message("s1", &text, None))
            .await
            .unwrap();
    }
    let all = events(store, "s1").await;
    assert_eq!(texts(&all), ["e0", "e1", "e2", "e3", "e4"]);
    let list = |after, limit| store.list_events("s1", after, limit);
    assert_eq!(list(Some(all[1].id), None).await.unwrap(), all[2..]);
    assert_eq!(list(None, Some(2)).await.unwrap(), all[..2]);
    assert_eq!(list(Some(all[1].id), Some(2)).await.unwrap(), all[2..4]);
    assert!(list(Some(all[4].id), None).await.unwrap().is_empty());
    assert_eq!(list(Some(0), Some(100)).await.unwrap(), all);
}

pub async fn events_batch_is_all_or_nothing(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    let before = snapshot(store, "s1", "r1").await;
    let fenced = EventWrite {
        lease_token: Some("lease_bogus".into()),
        ..leased(message("s1", "fenced", None), &rec)
    };
    let batch = vec![
        message("s1", "b0", Some("k0")),
        fenced,
        message("s1", "b2", None),
    ];
    let err = refused(store.append_events("s1", batch).await);
    assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
    assert_eq!(snapshot(store, "s1", "r1").await, before, "nothing stored");
    // The key of the refused batch was not taken.
    let first = store
        .append_event("s1", message("s1", "b0", Some("k0")))
        .await
        .unwrap();
    assert!(first.is_some());
    let batch = vec![message("nope", "x", None)];
    let err = refused(store.append_events("nope", batch).await);
    assert!(matches!(err, StoreError::SessionNotFound { .. }), "{err:?}");
}

pub async fn events_batch_dedupes_keys_within_the_batch(store: &dyn Store) {
    store.create_run(start("r1", "s1")).await.unwrap();
    let old = store
        .append_event("s1", message("s1", "old", Some("k0")))
        .await
        .unwrap()
        .expect("stored");
    let batch = vec![
        message("s1", "one", Some("k1")),
        message("s1", "one again", Some("k1")),
        message("s1", "old again", Some("k0")),
        message("s1", "plain", None),
        message("s1", "two", Some("k2")),
    ];
    let out = store.append_events("s1", batch).await.unwrap();
    let shape: Vec<Option<(i64, String)>> = out
        .iter()
        .map(|e| e.as_ref().map(|e| (e.seq, e.event.text().unwrap())))
        .collect();
    let stored = |seq, text: &str| Some((seq, text.to_string()));
    assert_eq!(
        shape,
        [
            stored(2, "one"),
            None,
            None,
            stored(3, "plain"),
            stored(4, "two")
        ]
    );
    assert!(out.iter().flatten().all(|e| e.id > old.id));
    assert_eq!(
        texts(&events(store, "s1").await),
        ["old", "one", "plain", "two"]
    );
    assert!(store
        .append_events("s1", Vec::new())
        .await
        .unwrap()
        .is_empty());
}

/// Writes a little of everything, in two sessions.
async fn lifecycle(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    store.create_run(start("r2", "s2")).await.unwrap();
    store
        .append_event("s1", message("s1", "hello", None))
        .await
        .unwrap();
    let failed = RunReport::Failed {
        error: "boom".into(),
    };
    report(store, &rec, failed).await;
    let b = runner(store, "lnch_b").await;
    let rec = claim(store, &b, ttl()).await;
    let idle = RunReport::Completed {
        session_status: Some(SessionStatus::Idle),
    };
    report(store, &rec, idle).await;
}

fn cursors(items: &[FeedItem]) -> Vec<i64> {
    items.iter().map(|i| i.cursor).collect()
}

pub async fn feed_after_returns_strictly_increasing_cursors_in_commit_order(store: &dyn Store) {
    assert_eq!(store.feed_head().await.unwrap(), 0, "an empty feed");
    assert!(feed(store, None).await.is_empty());
    lifecycle(store).await;
    let all = feed(store, None).await;
    assert!(
        all.windows(2).all(|w| w[0].cursor < w[1].cursor),
        "strictly increasing"
    );
    assert_eq!(store.feed_head().await.unwrap(), all.last().unwrap().cursor);
    // s1: created, started, a message, failed; s2 (created between) completes idle.
    assert_eq!(
        feed_kinds(store, "s1").await,
        [
            "session_created",
            "event",
            "session_updated",
            "event",
            "event",
            "run_failed",
            "session_updated"
        ]
    );
    assert_eq!(
        feed_kinds(store, "s2").await,
        ["session_created", "event", "event", "session_updated"]
    );
    let s1 = feed(store, Some("s1")).await;
    assert!(s1.iter().all(|i| i.session_id.as_deref() == Some("s1")));
    let at = |f: &dyn Fn(&FeedItem) -> bool| all.iter().position(f).expect("fed");
    let s2_created = at(&|i| i.kind == "session_created" && i.session_id.as_deref() == Some("s2"));
    let s1_message = at(&|i| data(i)["data"]["event_type"] == "message");
    assert!(s2_created < s1_message, "commit order across sessions");
    // Event items are the stored events, under the same cursors.
    let event_cursors: Vec<i64> = s1
        .iter()
        .filter(|i| i.kind == "event")
        .map(|i| i.cursor)
        .collect();
    let ids: Vec<i64> = events(store, "s1").await.iter().map(|e| e.id).collect();
    assert_eq!(event_cursors, ids);
    assert_eq!(data(&s1[0])["session"]["session_id"], "s1");
    assert_eq!(data(&s1[1])["data"]["event_type"], "run_start");
    assert_eq!(data(&s1[2])["session"]["status"], "running");
    // Replay after any cursor is the rest; a limit cuts it.
    for k in [0, 3, all.len() - 1] {
        let rest = store.feed_after(all[k].cursor, None, 1000).await.unwrap();
        assert_eq!(cursors(&rest), cursors(&all[k + 1..]), "after item {k}");
    }
    let first_two = store.feed_after(0, None, 2).await.unwrap();
    assert_eq!(cursors(&first_two), cursors(&all[..2]));
    let tail = store
        .feed_after(all[1].cursor, Some("s2"), 1000)
        .await
        .unwrap();
    let want: Vec<i64> = all[2..]
        .iter()
        .filter(|i| i.session_id.as_deref() == Some("s2"))
        .map(|i| i.cursor)
        .collect();
    assert_eq!(cursors(&tail), want);
}

/// A subscriber sees every item once, live, in the order (and with the content) the
/// feed replays: "replay after N, then live" has no gap and no duplicate.
pub async fn feed_subscribe_delivers_live_items_as_feed_after_lists_them(store: &dyn Store) {
    // Items from before the subscription are replayed, not sent.
    store.create_run(start("r0", "s0")).await.unwrap();
    store.stop_run("r0").await.unwrap();
    let mut rx = store.subscribe();
    let head = store.feed_head().await.unwrap();
    lifecycle(store).await;
    let replay = store.feed_after(head, None, 1000).await.unwrap();
    assert!(replay.len() >= 10, "{replay:?}");
    let mut live = Vec::new();
    while live.len() < replay.len() {
        // A bound for a hung store, not a timing assertion: items are sent at commit.
        let item = tokio::time::timeout(StdDuration::from_secs(30), rx.recv())
            .await
            .expect("a live item within 30 s")
            .expect("not lagging");
        live.push(item);
    }
    let view = |items: &[FeedItem]| {
        let v = items
            .iter()
            .map(|i| (i.cursor, i.kind.clone(), i.session_id.clone(), data(i)));
        v.collect::<Vec<_>>()
    };
    assert_eq!(view(&live), view(&replay));
    assert!(rx.try_recv().is_err(), "nothing more");
}
