//! `ingest`: event POSTs at concurrency C into a few sessions for D seconds — one event
//! per request, or with `--batch N` N events per `POST /sessions/{id}/events/batch`.
//! The sessions come from `POST /runs`; no runner is needed (runs stay pending and are
//! stopped at the end so a shared coordinator is left clean).

use std::{
    sync::{atomic::AtomicU64, Arc},
    time::Instant,
};

use serde_json::json;

use aof_wire::Event;

use crate::{
    report::{latency_fields, round3, Errors, Progress},
    scenarios::{bench_tag, closed_loop, create_run, post_batch, post_event, stop_run},
    target::Target,
    Outcome, Params,
};

pub(crate) async fn run(t: &Target, p: &Params) -> anyhow::Result<Outcome> {
    let concurrency = p.pick(p.concurrency, 32, 4).max(1);
    let duration = p.secs(p.duration, 10.0, 1.0);
    let n_sessions = p.pick(p.sessions, 8, 2).max(1);
    let batch = p.batch;
    if let Some(n) = batch {
        anyhow::ensure!(
            (1..=aof_wire::api::MAX_BATCH_EVENTS).contains(&n),
            "--batch must be 1 to {}, not {n}",
            aof_wire::api::MAX_BATCH_EVENTS
        );
    }
    let mut runs = Vec::with_capacity(n_sessions);
    let tag = bench_tag();
    for _ in 0..n_sessions {
        runs.push(create_run(&t.api, &tag).await.map_err(anyhow::Error::msg)?);
    }
    let sessions: Arc<Vec<String>> = Arc::new(runs.iter().map(|r| r.session_id.clone()).collect());
    // One body per session, serialized once: the client's JSON work stays out of the
    // measurement as far as it can (the server still parses every event).
    let bodies: Arc<Vec<bytes::Bytes>> = Arc::new(match batch {
        Some(n) => sessions
            .iter()
            .map(|sid| {
                let events = vec![Event::message(sid, "assistant", "bench ingest"); n];
                serde_json::to_vec(&aof_wire::api::EventBatch { events }).map(bytes::Bytes::from)
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    });
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Errors::default());
    let unit = if batch.is_some() {
        "requests"
    } else {
        "events"
    };
    let progress = Progress::start("ingest", done.clone(), None, unit);
    let start = Instant::now();
    let deadline = start + duration;
    let api = t.api.clone();
    let mut lat = closed_loop(concurrency, deadline, &done, &errors, move |w, i| {
        let (api, sessions, bodies) = (api.clone(), sessions.clone(), bodies.clone());
        async move {
            let k = (w + i) % sessions.len();
            match batch {
                Some(n) => post_batch(&api, &sessions[k], bodies[k].clone(), n).await,
                None => {
                    let ev = Event::message(&sessions[k], "assistant", "bench ingest");
                    post_event(&api, &ev, None).await
                }
            }
        }
    })
    .await?;
    let wall = start.elapsed().as_secs_f64();
    drop(progress);
    for r in &runs {
        stop_run(&t.api, &r.run_id).await;
    }
    let requests = lat.len() as u64;
    let n = requests * batch.unwrap_or(1) as u64;
    let mut out = vec![
        ("events".to_string(), json!(n)),
        ("events_per_s".into(), json!(round3(n as f64 / wall))),
        ("requests".into(), json!(requests)),
        (
            "requests_per_s".into(),
            json!(round3(requests as f64 / wall)),
        ),
    ];
    // Per request (a whole batch with --batch).
    out.extend(latency_fields("latency", &mut lat, &[50, 99]));
    out.extend(errors.fields());
    Ok(Outcome {
        parameters: json!({
            "concurrency": concurrency,
            "duration_s": duration.as_secs_f64(),
            "sessions": n_sessions,
            "batch": batch,
        }),
        results: out,
        ok: errors.count() == 0 && n > 0,
        ..Outcome::default()
    })
}
