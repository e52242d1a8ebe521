//! The store on a real PostgreSQL server (`AOF_TEST_DATABASE_URL`, fresh database per
//! test) under concurrent writers: two `PgStore`s on one database stand for two
//! coordinators.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aof_store::{prelude::*, EventWrite, RunReport, Writer};
use aof_store_postgres::{testing, PgOptions, PgStore};
use aof_wire::{
    event::types::{RUN_COMPLETED, RUN_FAILED, RUN_STOPPED},
    runner::RegisterRequest,
    Event,
};

async fn stores(n: usize) -> Option<Vec<Arc<PgStore>>> {
    let Some(base) = testing::base_url() else {
        eprintln!("skipped: AOF_TEST_DATABASE_URL is unset");
        return None;
    };
    let url = testing::fresh_database(&base).await.unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Arc::new(
            PgStore::connect(&url, PgOptions::default()).await.unwrap(),
        ));
    }
    Some(out)
}

/// Waits until every store's feed watermark is the same: once writers are done, each
/// store has released its own commits and the others' reach it by NOTIFY, so equal
/// watermarks are the last cursor. (A write waits for its own store's watermark only.)
async fn settled(stores: &[Arc<PgStore>]) -> i64 {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut heads = Vec::new();
        for s in stores {
            heads.push(s.feed_head().await.unwrap());
        }
        if heads.iter().all(|h| *h == heads[0]) {
            return heads[0];
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "watermarks never met: {heads:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

use aof_store::conformance::start as new_run;

fn write(session: &str, i: usize) -> EventWrite {
    let mut event = Event::new("message", session);
    event.content = Some(vec![serde_json::json!(format!("m{i}"))]);
    EventWrite {
        event,
        run_id: None,
        idempotency_key: None,
        lease_token: None,
    }
}

/// Writers on two stores append to several sessions while a follower pages through
/// `feed_after` like an SSE replay. If a transaction could commit a cursor below one
/// the follower already passed, the final drain would miss it: every committed item
/// must be seen exactly once, in increasing cursor order, and each session's `seq`s
/// must be 1..n in cursor order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_let_a_replay_skip_an_event() {
    let Some(stores) = stores(2).await else {
        return;
    };
    let sessions: Vec<String> = (0..4).map(|i| format!("s{i}")).collect();
    for (i, s) in sessions.iter().enumerate() {
        stores[i % 2]
            .create_run(new_run(&format!("r{i}"), s))
            .await
            .unwrap();
    }
    const PER_WRITER: usize = 60;
    let done = Arc::new(tokio::sync::Notify::new());
    let follower = {
        let store = stores[1].clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut last = 0i64;
            let mut finished = false;
            loop {
                let page = store.feed_after(last, None, 50).await.unwrap();
                if page.is_empty() {
                    if finished {
                        return seen;
                    }
                    // Re-check once after the writers are done, then stop.
                    tokio::select! {
                        _ = done.notified() => finished = true,
                        _ = tokio::time::sleep(std::time::Duration::from_millis(2)) => {}
                    }
                    continue;
                }
                for item in page {
                    assert!(item.cursor > last, "cursor order");
                    last = item.cursor;
                    seen.push(item.cursor);
                }
            }
        })
    };
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = stores[w % 2].clone();
        let session = sessions[w % sessions.len()].clone();
        writers.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                store
                    .append_event(&session, write(&session, i))
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    settled(&stores).await;
    done.notify_one();
    let seen = follower.await.unwrap();
    let all = stores[0].feed_after(0, None, 100_000).await.unwrap();
    let all_cursors: Vec<i64> = all.iter().map(|i| i.cursor).collect();
    let first_seen = seen.first().copied().unwrap_or(i64::MAX);
    let expected: Vec<i64> = all_cursors
        .iter()
        .copied()
        .filter(|c| *c >= first_seen)
        .collect();
    assert_eq!(
        seen, expected,
        "the follower saw every committed item once, in order"
    );
    let events = all.iter().filter(|i| i.kind == "event").count();
    assert_eq!(events, 8 * PER_WRITER);
    for s in &sessions {
        let evs = stores[0].list_events(s, None, None).await.unwrap();
        let seqs: Vec<i64> = evs.iter().map(|e| e.seq).collect();
        let want: Vec<i64> = (1..=evs.len() as i64).collect();
        assert_eq!(seqs, want, "session {s}: seq gap-free and in cursor order");
        assert_eq!(evs.len(), 2 * PER_WRITER);
    }
}

/// Many claimers on two stores race for the same pending runs: each run is claimed by
/// exactly one runner, with attempt 1, a claim comes back empty only when nothing is
/// left to take (losing a race to another runner is not "nothing to do": the poll would
/// park while runs wait), and a report with another runner's lease is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_take_each_run_once_and_fence_reports() {
    let Some(stores) = stores(2).await else {
        return;
    };
    const RUNS: usize = 40;
    for i in 0..RUNS {
        stores[i % 2]
            .create_run(new_run(&format!("run{i}"), &format!("sess{i}")))
            .await
            .unwrap();
    }
    let mut runners = Vec::new();
    for r in 0..6 {
        let id = format!("runner{r}");
        let info = stores[r % 2]
            .register_runner(
                &id,
                &RegisterRequest {
                    hostname: "h".into(),
                    project_dir: "/p".into(),
                    executor_profile: "default".into(),
                    executor: None,
                    tags: None,
                    require_matching_tags: None,
                    instance_id: Some(format!("i{r}")),
                },
            )
            .await
            .unwrap();
        runners.push(info);
    }
    let mut tasks = Vec::new();
    for (r, info) in runners.into_iter().enumerate() {
        let store = stores[r % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            // Claim until told there is nothing left.
            while let Some(rec) = store
                .claim_run(&info, chrono::Duration::seconds(60))
                .await
                .unwrap()
            {
                got.push((info.runner_id.clone(), rec));
            }
            got
        }));
    }
    let mut by_run: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut claims = Vec::new();
    for t in tasks {
        for (runner, rec) in t.await.unwrap() {
            assert_eq!(rec.run.attempt, 1);
            by_run
                .entry(rec.run.run_id.clone())
                .or_default()
                .push(runner.clone());
            claims.push((runner, rec));
        }
    }
    for (run, who) in &by_run {
        assert_eq!(who.len(), 1, "run {run} claimed by {who:?}");
    }
    let claimed: BTreeSet<&String> = by_run.keys().collect();
    assert_eq!(claimed.len(), RUNS, "every run claimed");
    assert_eq!(
        stores[0]
            .list_runs(Some("claimed"), None)
            .await
            .unwrap()
            .len(),
        RUNS
    );

    let (runner, rec) = &claims[0];
    let stale = Writer {
        runner_id: runner.clone(),
        lease_token: Some("not-the-token".into()),
    };
    let err = stores[1]
        .report(&rec.run.run_id, &stale, RunReport::Started)
        .await
        .unwrap_err();
    assert!(
        matches!(err, aof_store::StoreError::LeaseConflict(_)),
        "{err:?}"
    );
    let good = Writer {
        runner_id: runner.clone(),
        lease_token: rec.lease_token.clone(),
    };
    stores[1]
        .report(&rec.run.run_id, &good, RunReport::Started)
        .await
        .unwrap();
    let done = stores[0]
        .report(
            &rec.run.run_id,
            &good,
            RunReport::Completed {
                session_status: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(done.status, aof_core::RunStatus::Completed);
    // A retried completion is answered the same and changes nothing.
    let again = stores[1]
        .report(
            &rec.run.run_id,
            &good,
            RunReport::Completed {
                session_status: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(again.status, aof_core::RunStatus::Completed);
}

/// Each store's live feed (`subscribe`) carries every committed item of both stores —
/// its own and, relayed by LISTEN/NOTIFY, the other's — once each, in cursor order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_feed_on_each_store_has_every_commit_in_cursor_order() {
    let Some(stores) = stores(2).await else {
        return;
    };
    for (i, store) in stores.iter().enumerate() {
        store
            .create_run(new_run(&format!("r{i}"), &format!("s{i}")))
            .await
            .unwrap();
    }
    let mut subs: Vec<_> = stores.iter().map(|s| s.subscribe()).collect();
    let head = settled(&stores).await;
    const PER_WRITER: usize = 40;
    let mut writers = Vec::new();
    for w in 0..6 {
        let store = stores[w % 2].clone();
        let session = format!("s{}", w % 2);
        writers.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                store
                    .append_event(&session, write(&session, i))
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    settled(&stores).await;
    let all: Vec<i64> = stores[0]
        .feed_after(head, None, 100_000)
        .await
        .unwrap()
        .iter()
        .map(|i| i.cursor)
        .collect();
    assert_eq!(all.len(), 6 * PER_WRITER);
    for (n, sub) in subs.iter_mut().enumerate() {
        let mut got = Vec::new();
        let mut prev = 0;
        while got.len() < all.len() {
            let item = tokio::time::timeout(std::time::Duration::from_secs(30), sub.recv())
                .await
                .unwrap_or_else(|_| {
                    let missing: Vec<i64> = all.iter().copied().filter(|c| !got.contains(c)).collect();
                    panic!("store {n}: live feed stalled after {} items; missing {missing:?} head {head}", got.len())
                })
                .unwrap();
            assert!(
                item.cursor > prev,
                "store {n}: {} after {prev}",
                item.cursor
            );
            prev = item.cursor;
            // The other store's setup items may be relayed after we subscribed.
            if item.cursor > head {
                got.push(item.cursor);
            }
        }
        assert_eq!(got, all, "store {n}: every item once, in cursor order");
    }
}

/// Three stores (three coordinators) run whole lifecycles at once — create, claim with
/// `SKIP LOCKED`, start, fenced events, complete — plus a stop racing each completion,
/// while a follower pages `feed_after` and every store has a live subscriber. Every
/// committed item reaches the follower and each subscriber once, in cursor order; each
/// run ends exactly once; each session's `seq`s are 1..n in cursor order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_stores_running_lifecycles_never_let_a_reader_skip() {
    let Some(stores) = stores(3).await else {
        return;
    };
    const RUNS: usize = 30;
    let mut subs: Vec<_> = stores.iter().map(|s| s.subscribe()).collect();
    let head = settled(&stores).await;
    let done = Arc::new(tokio::sync::Notify::new());
    let follower = {
        let (store, done) = (stores[2].clone(), done.clone());
        tokio::spawn(async move {
            let (mut seen, mut last, mut finished) = (Vec::new(), head, false);
            loop {
                let page = store.feed_after(last, None, 50).await.unwrap();
                if page.is_empty() && finished {
                    return seen;
                }
                if page.is_empty() {
                    tokio::select! {
                        _ = done.notified() => finished = true,
                        _ = tokio::time::sleep(std::time::Duration::from_millis(2)) => {}
                    }
                }
                for item in page {
                    assert!(item.cursor > last, "cursor order");
                    last = item.cursor;
                    seen.push(item.cursor);
                }
            }
        })
    };
    let mut tasks = Vec::new();
    for c in 0..3 {
        let stores = stores.clone();
        tasks.push(tokio::spawn(async move {
            let store = &stores[c];
            let runner = store
                .register_runner(&format!("runner{c}"), &register_request(c))
                .await
                .unwrap();
            for i in (c..RUNS).step_by(3) {
                let session = format!("life{i}");
                store
                    .create_run(new_run(&format!("lrun{i}"), &session))
                    .await
                    .unwrap();
                // Any runner may take it: claims cross coordinators.
                let Some(rec) = store
                    .claim_run(&runner, chrono::Duration::seconds(60))
                    .await
                    .unwrap()
                else {
                    continue;
                };
                let sid = rec.run.session_id.clone();
                let who = Writer {
                    runner_id: runner.runner_id.clone(),
                    lease_token: rec.lease_token.clone(),
                };
                let run_id = rec.run.run_id.clone();
                store
                    .report(&run_id, &who, RunReport::Started)
                    .await
                    .unwrap();
                for k in 0..3 {
                    let mut w = write(&sid, k);
                    w.run_id = Some(run_id.clone());
                    w.lease_token = rec.lease_token.clone();
                    // A stop on another store may end the lease first: then refused.
                    let _ = store.append_event(&sid, w).await;
                }
                let stopper = stores[(c + 1) % 3].clone();
                let (stop, done) = tokio::join!(
                    stopper.stop_run(&run_id),
                    store.report(
                        &run_id,
                        &who,
                        RunReport::Completed {
                            session_status: None
                        }
                    )
                );
                assert!(stop.is_ok() || done.is_ok(), "{stop:?} / {done:?}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let final_head = settled(&stores).await;
    done.notify_one();
    let seen = follower.await.unwrap();
    let all: Vec<i64> = (stores[0].feed_after(head, None, 100_000).await.unwrap())
        .iter()
        .map(|i| i.cursor)
        .collect();
    assert_eq!(
        seen, all,
        "the follower saw every committed item once, in order"
    );
    for (n, sub) in subs.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.last().is_none_or(|c| *c < *all.last().unwrap()) {
            let item = tokio::time::timeout(std::time::Duration::from_secs(30), sub.recv())
                .await
                .unwrap_or_else(|_| panic!("store {n}: live feed stalled"))
                .unwrap();
            if item.cursor > head {
                got.push(item.cursor);
            }
        }
        assert_eq!(got, all, "store {n}: every item once, in cursor order");
    }
    assert!(final_head >= *all.last().unwrap());
    for i in 0..RUNS {
        let sid = format!("life{i}");
        let evs = stores[0].list_events(&sid, None, None).await.unwrap();
        let seqs: Vec<i64> = evs.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=evs.len() as i64).collect::<Vec<_>>(), "{sid}");
        let ids: Vec<i64> = evs.iter().map(|e| e.id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{sid}: seq order is cursor order"
        );
        let ends = evs
            .iter()
            .filter(|e| [RUN_COMPLETED, RUN_FAILED, RUN_STOPPED].contains(&&*e.event.event_type))
            .count();
        let run = stores[1].latest_run(&sid).await.unwrap().unwrap().run;
        let want = usize::from(run.status.is_terminal());
        assert_eq!(ends, want, "{sid}: {:?} with {ends} end events", run.status);
    }
}

fn register_request(c: usize) -> RegisterRequest {
    RegisterRequest {
        hostname: "h".into(),
        project_dir: "/p".into(),
        executor_profile: "default".into(),
        executor: None,
        tags: None,
        require_matching_tags: None,
        instance_id: Some(format!("life{c}")),
    }
}
