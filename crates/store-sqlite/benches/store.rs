//! Micro-benchmarks of the store's hot paths on a real SQLite file (WAL,
//! synchronous=NORMAL): event append (alone and 32 at once, which exercises group
//! commit), run creation, and a whole claim→report cycle.
//! `cargo bench -p aof-store-sqlite`; CI only compiles them.

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};

use aof_store::{prelude::*, EventWrite, NewRun, RunReport, Writer};
use aof_store_sqlite::{SqliteOptions, SqliteStore};
use aof_wire::{runner::RegisterRequest, Demands, Event, ExecutionMode, RunType};

static N: AtomicU64 = AtomicU64::new(0);

fn new_run(session_id: Option<String>) -> NewRun {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let (run_type, session_id) = match session_id {
        Some(s) => (RunType::ResumeSession, s),
        None => (RunType::StartSession, format!("ses_b{n}")),
    };
    NewRun {
        run_id: format!("run_b{n}"),
        run_type,
        session_id,
        agent_name: None,
        parameters: serde_json::json!({"prompt": "bench"}),
        project_dir: None,
        parent_session_id: None,
        execution_mode: ExecutionMode::Sync,
        demands: Demands {
            executor_type: Some("autonomous".into()),
            ..Demands::default()
        },
        scope: None,
        blueprint: None,
        timeout_at: None,
        deliver_callbacks: Vec::new(),
        traceparent: None,
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(SqliteStore::open(
            &dir.path().join("bench.db"),
            SqliteOptions::default(),
        ))
        .unwrap();
    let runner_id = "lnch_bench";
    let runner = rt
        .block_on(
            store.register_runner(
                runner_id,
                &RegisterRequest {
                    hostname: "h".into(),
                    project_dir: "/p".into(),
                    executor_profile: "echo".into(),
                    executor: serde_json::json!({"type": "autonomous"})
                        .as_object()
                        .cloned(),
                    ..Default::default()
                },
            ),
        )
        .unwrap();
    let session = rt
        .block_on(store.create_run(new_run(None)))
        .unwrap()
        .run
        .session_id;

    c.bench_function("append_event", |b| {
        b.to_async(&rt).iter(|| async {
            let event = Event::message(&session, "assistant", "hello");
            store
                .append_event(
                    &session,
                    EventWrite {
                        event,
                        run_id: None,
                        idempotency_key: None,
                        lease_token: None,
                    },
                )
                .await
                .unwrap()
        })
    });
    // 32 appends in flight at once, as under HTTP load: they share group commits.
    // Divide the time by 32 for the cost of one event.
    c.bench_function("append_event_x32_concurrent", |b| {
        b.to_async(&rt).iter(|| async {
            let appends = (0..32).map(|_| {
                store.append_event(
                    &session,
                    EventWrite {
                        event: Event::message(&session, "assistant", "hello"),
                        run_id: None,
                        idempotency_key: None,
                        lease_token: None,
                    },
                )
            });
            for r in futures::future::join_all(appends).await {
                r.unwrap();
            }
        })
    });
    c.bench_function("create_run", |b| {
        b.to_async(&rt)
            .iter(|| async { store.create_run(new_run(None)).await.unwrap() })
    });
    // Drain what create_run left pending so the cycle below claims its own run.
    rt.block_on(async {
        while let Some(r) = store
            .claim_run(&runner, chrono::Duration::seconds(60))
            .await
            .unwrap()
        {
            let who = Writer {
                runner_id: runner_id.into(),
                lease_token: r.lease_token.clone(),
            };
            store
                .report(
                    &r.run.run_id,
                    &who,
                    RunReport::Failed {
                        error: "drain".into(),
                    },
                )
                .await
                .unwrap();
        }
    });
    c.bench_function("claim_start_complete", |b| {
        b.to_async(&rt).iter(|| async {
            store.create_run(new_run(None)).await.unwrap();
            let r = store
                .claim_run(&runner, chrono::Duration::seconds(60))
                .await
                .unwrap()
                .unwrap();
            let who = Writer {
                runner_id: runner_id.into(),
                lease_token: r.lease_token.clone(),
            };
            store
                .report(&r.run.run_id, &who, RunReport::Started)
                .await
                .unwrap();
            store
                .report(
                    &r.run.run_id,
                    &who,
                    RunReport::Completed {
                        session_status: None,
                    },
                )
                .await
                .unwrap()
        })
    });
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
