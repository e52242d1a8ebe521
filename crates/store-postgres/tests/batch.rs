//! `append_events` on a real PostgreSQL server (`AOF_TEST_DATABASE_URL`, fresh database
//! per test): order and seq, duplicates, fencing and atomicity, live delivery.

use aof_store::{prelude::*, EventWrite, StoreError};
use aof_store_postgres::{testing, PgOptions, PgStore};
use aof_wire::{runner::RegisterRequest, Event};

async fn store() -> Option<PgStore> {
    let Some(base) = testing::base_url() else {
        eprintln!("skipped: AOF_TEST_DATABASE_URL is unset");
        return None;
    };
    let url = testing::fresh_database(&base).await.unwrap();
    Some(PgStore::connect(&url, PgOptions::default()).await.unwrap())
}

use aof_store::conformance::start as new_run;

fn write(session: &str, text: &str, key: Option<&str>) -> EventWrite {
    EventWrite {
        event: Event::message(session, "assistant", text),
        run_id: None,
        idempotency_key: key.map(str::to_string),
        lease_token: None,
    }
}

fn texts(events: &[aof_wire::StoredEvent]) -> Vec<String> {
    events.iter().filter_map(|e| e.event.text()).collect()
}

#[tokio::test]
async fn a_batch_is_stored_in_order_and_broadcast_per_event() {
    let Some(store) = store().await else { return };
    store.create_run(new_run("r1", "s1")).await.unwrap();
    let single = store
        .append_event("s1", write("s1", "single", None))
        .await
        .unwrap()
        .unwrap();
    let mut sub = store.subscribe();
    let writes = (0..5)
        .map(|i| write("s1", &format!("b{i}"), None))
        .collect();
    let out = store.append_events("s1", writes).await.unwrap();
    let stored: Vec<_> = out.into_iter().map(Option::unwrap).collect();
    let seqs: Vec<i64> = stored.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (single.seq + 1..single.seq + 6).collect::<Vec<_>>());
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
    assert!(stored[0].id > single.id);

    let listed = store.list_events("s1", None, None).await.unwrap();
    assert_eq!(texts(&listed), ["single", "b0", "b1", "b2", "b3", "b4"]);
    assert_eq!(&listed[1..], &stored[..]);

    let mut live = Vec::new();
    while live.len() < 5 {
        let item = tokio::time::timeout(std::time::Duration::from_secs(30), sub.recv())
            .await
            .expect("live item within 30 s")
            .unwrap();
        if item.kind == "event" {
            live.push(item.cursor);
        }
    }
    assert_eq!(live, stored.iter().map(|e| e.id).collect::<Vec<_>>());

    assert!(store
        .append_events("s1", Vec::new())
        .await
        .unwrap()
        .is_empty());
    let err = store
        .append_events("nope", vec![write("nope", "x", None)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SessionNotFound(_)), "{err:?}");
}

#[tokio::test]
async fn keys_already_stored_or_repeated_in_the_batch_are_duplicates() {
    let Some(store) = store().await else { return };
    store.create_run(new_run("r1", "s1")).await.unwrap();
    let batch = |texts: &[&str]| -> Vec<EventWrite> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| write("s1", t, Some(&format!("k/{i}"))))
            .collect()
    };
    let first = store.append_events("s1", batch(&["a", "b"])).await.unwrap();
    assert!(first.iter().all(Option::is_some));
    let again = store
        .append_events("s1", batch(&["a", "b", "c"]))
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(Option::is_some).collect::<Vec<_>>(),
        [false, false, true]
    );
    assert_eq!(again[2].as_ref().unwrap().seq, 3);
    let repeated = vec![
        write("s1", "d", Some("same")),
        write("s1", "d twice", Some("same")),
    ];
    let out = store.append_events("s1", repeated).await.unwrap();
    assert!(out[0].is_some() && out[1].is_none(), "{out:?}");
    // The repeat took no seq: the next event follows without a gap.
    let next = store
        .append_events("s1", vec![write("s1", "e", None)])
        .await
        .unwrap();
    assert_eq!(
        next[0].as_ref().unwrap().seq,
        out[0].as_ref().unwrap().seq + 1
    );
    let listed = store.list_events("s1", None, None).await.unwrap();
    assert_eq!(texts(&listed), ["a", "b", "c", "d", "e"]);
}

#[tokio::test]
async fn one_fenced_event_refuses_the_whole_batch() {
    let Some(store) = store().await else { return };
    store.create_run(new_run("r1", "s1")).await.unwrap();
    let runner = store
        .register_runner(
            "runner1",
            &RegisterRequest {
                hostname: "h".into(),
                project_dir: "/p".into(),
                executor_profile: "default".into(),
                executor: None,
                tags: None,
                require_matching_tags: None,
                instance_id: Some("i1".into()),
            },
        )
        .await
        .unwrap();
    let rec = store
        .claim_run(&runner, chrono::Duration::seconds(60))
        .await
        .unwrap()
        .expect("the run is claimed");
    let token = rec.lease_token.clone().expect("a lease token");
    let leased = |text: &str, token: &str, key: Option<&str>| EventWrite {
        run_id: Some("r1".into()),
        lease_token: Some(token.into()),
        ..write("s1", text, key)
    };
    let before = store.list_events("s1", None, None).await.unwrap();

    // The third event carries a stale token: the two valid ones before it are not stored.
    let mixed = vec![
        leased("ok0", &token, Some("m/0")),
        leased("ok1", &token, Some("m/1")),
        leased("stale", "not-the-token", Some("m/2")),
    ];
    let err = store.append_events("s1", mixed).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseConflict(_)), "{err:?}");
    let no_run_id = vec![EventWrite {
        run_id: None,
        ..leased("x", &token, None)
    }];
    let err = store.append_events("s1", no_run_id).await.unwrap_err();
    assert!(matches!(err, StoreError::Illegal(_)), "{err:?}");
    let err = store
        .append_events(
            "s1",
            vec![EventWrite {
                run_id: Some("no-such-run".into()),
                ..leased("x", &token, None)
            }],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::RunNotFound), "{err:?}");
    assert_eq!(store.list_events("s1", None, None).await.unwrap(), before);

    let good = vec![
        leased("ok0", &token, Some("m/0")),
        leased("ok1", &token, Some("m/1")),
    ];
    let out = store.append_events("s1", good.clone()).await.unwrap();
    assert!(out.iter().all(Option::is_some));
    assert!(out
        .iter()
        .all(|e| e.as_ref().unwrap().run_id.as_deref() == Some("r1")));
    // A retry of stored events is answered as duplicates even with a stale token, as
    // for a single append; one new event in it makes the token count again.
    let stale_retry: Vec<EventWrite> = good
        .iter()
        .map(|w| EventWrite {
            lease_token: Some("not-the-token".into()),
            ..w.clone()
        })
        .collect();
    let out = store
        .append_events("s1", stale_retry.clone())
        .await
        .unwrap();
    assert!(out.iter().all(Option::is_none), "{out:?}");
    let mut with_new = stale_retry;
    with_new.push(leased("new", "not-the-token", Some("m/2")));
    let err = store.append_events("s1", with_new).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseConflict(_)), "{err:?}");
    let listed = store.list_events("s1", None, None).await.unwrap();
    assert_eq!(texts(&listed[before.len()..]), ["ok0", "ok1"]);
}
