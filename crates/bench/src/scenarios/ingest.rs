//! `ingest`: single-event POSTs at concurrency C into a few sessions for D seconds.
//! The sessions come from `POST /runs`; no runner is needed (runs stay pending and are
//! stopped at the end so a shared coordinator is left clean).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::json;

use aof_wire::Event;

use crate::{
    report::{latency_fields, round3, Errors, Progress},
    scenarios::{create_run, post_event, stop_run},
    target::Target,
    Outcome, Params,
};

pub(crate) async fn run(t: &Target, p: &Params) -> anyhow::Result<Outcome> {
    let concurrency = p.pick(p.concurrency, 32, 4).max(1);
    let duration = p.secs(p.duration, 10.0, 1.0);
    let n_sessions = p.pick(p.sessions, 8, 2).max(1);
    let mut runs = Vec::with_capacity(n_sessions);
    for _ in 0..n_sessions {
        runs.push(create_run(&t.api).await.map_err(anyhow::Error::msg)?);
    }
    let sessions: Arc<Vec<String>> = Arc::new(runs.iter().map(|r| r.session_id.clone()).collect());
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Errors::default());
    let progress = Progress::start("ingest", done.clone(), None, "events");
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let (api, sessions, done, errors) = (
            t.api.clone(),
            sessions.clone(),
            done.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<Duration> = Vec::new();
            let mut i = w;
            while Instant::now() < deadline {
                let sid = &sessions[i % sessions.len()];
                i += 1;
                let ev = Event::message(sid, "assistant", "bench ingest");
                let sent = Instant::now();
                match post_event(&api, &ev, None).await {
                    Ok(()) => {
                        lat.push(sent.elapsed());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.add(e),
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await?);
    }
    let wall = start.elapsed().as_secs_f64();
    drop(progress);
    for r in &runs {
        stop_run(&t.api, &r.run_id).await;
    }
    let n = lat.len() as u64;
    let mut out = vec![
        ("events".to_string(), json!(n)),
        ("events_per_s".into(), json!(round3(n as f64 / wall))),
    ];
    out.extend(latency_fields("latency", &mut lat, &[50, 99]));
    out.extend(errors.fields());
    Ok(Outcome {
        parameters: json!({
            "concurrency": concurrency,
            "duration_s": duration.as_secs_f64(),
            "sessions": n_sessions,
        }),
        results: out,
        ok: errors.count() == 0 && n > 0,
    })
}
