//! Group commit under real concurrency: many writers at once on a real SQLite file, some
//! of them refused or rolled back inside a batch. Every acknowledged event must be
//! committed (visible on a reader connection), `seq` gap-free per session, the live feed
//! in cursor order with every acknowledged event on it, and refused writes leave nothing.

use std::{collections::BTreeMap, sync::Arc};

use aof_store::{prelude::*, EventWrite, NewRun, StoreError};
use aof_store_sqlite::{SqliteOptions, SqliteStore};
use aof_wire::{Demands, Event, ExecutionMode, RunType};

fn new_run(n: usize) -> NewRun {
    NewRun {
        run_id: format!("run_g{n}"),
        run_type: RunType::StartSession,
        session_id: format!("ses_g{n}"),
        agent_name: None,
        parameters: serde_json::json!({"prompt": "x"}),
        project_dir: None,
        parent_session_id: None,
        execution_mode: ExecutionMode::Sync,
        demands: Demands::default(),
        scope: None,
        blueprint: None,
        timeout_at: None,
        deliver_callbacks: Vec::new(),
        traceparent: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_commits_without_losing_or_reordering_anything() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("g.db"), SqliteOptions::default())
            .await
            .unwrap(),
    );
    const SESSIONS: usize = 4;
    for n in 0..SESSIONS {
        store.create_run(new_run(n)).await.unwrap();
    }
    let mut feed = store.subscribe();

    let mut tasks = Vec::new();
    for i in 0..400usize {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let sid = format!("ses_g{}", i % SESSIONS);
            match i % 10 {
                // Refused: no such session (the careful path rolls its savepoint back).
                3 => {
                    let r = store
                        .append_event("ses_missing", write("ses_missing", i, None))
                        .await;
                    assert!(matches!(r, Err(StoreError::SessionNotFound(_))), "{r:?}");
                    (sid, None)
                }
                // Refused: the session exists (a whole job rolled back inside a batch).
                7 => {
                    let r = store.create_run(new_run(i % SESSIONS)).await;
                    assert!(matches!(r, Err(StoreError::SessionExists(_))), "{r:?}");
                    (sid, None)
                }
                // Repeated idempotency keys: stored once per session.
                5 => {
                    let key = format!("k{}", i % 3);
                    let r = store.append_event(&sid, write(&sid, i, Some(key))).await;
                    (sid, r.unwrap().map(|e| e.id))
                }
                _ => {
                    let r = store.append_event(&sid, write(&sid, i, None)).await;
                    (sid, Some(r.unwrap().expect("stored").id))
                }
            }
        }));
    }
    let mut acked: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for t in tasks {
        let (sid, stored) = t.await.unwrap();
        if let Some(cursor) = stored {
            acked.entry(sid).or_default().push(cursor);
        }
    }

    // Acknowledged means committed: a reader connection sees exactly those events.
    for (sid, cursors) in &acked {
        let events = store.list_events(sid, None, None).await.unwrap();
        let mut listed: Vec<i64> = events.iter().map(|e| e.id).collect();
        let mut want = cursors.clone();
        want.sort();
        listed.sort();
        assert_eq!(listed, want, "session {sid}");
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        let first = seqs[0];
        assert_eq!(
            seqs,
            (first..first + seqs.len() as i64).collect::<Vec<_>>(),
            "seq of {sid} is gap-free and in cursor order"
        );
        // Keyed writes: one stored per distinct key of the session, the rest refused.
        let keys: std::collections::BTreeSet<usize> = (0..400usize)
            .filter(|i| i % 10 == 5 && format!("ses_g{}", i % SESSIONS) == *sid)
            .map(|i| i % 3)
            .collect();
        let keyed = events
            .iter()
            .filter(|e| e.event.text().is_some_and(|t| t.ends_with("keyed")))
            .count();
        assert_eq!(keyed, keys.len(), "session {sid}");
    }
    assert!(store
        .list_events("ses_missing", None, None)
        .await
        .unwrap()
        .is_empty());

    // The live feed carried every acknowledged event, in strictly increasing cursor order.
    let mut live = Vec::new();
    while let Ok(item) = feed.try_recv() {
        live.push(item.cursor);
    }
    assert!(live.windows(2).all(|w| w[0] < w[1]), "feed out of order");
    for cursors in acked.values() {
        for c in cursors {
            assert!(live.contains(c), "acknowledged event {c} never broadcast");
        }
    }
}

fn write(sid: &str, i: usize, key: Option<String>) -> EventWrite {
    let text = if key.is_some() { "keyed" } else { "plain" };
    EventWrite {
        event: Event::message(sid, "assistant", &format!("{i} {text}")),
        run_id: None,
        idempotency_key: key,
        lease_token: None,
    }
}
