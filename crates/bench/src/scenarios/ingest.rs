//! `ingest`: single-event POSTs at concurrency C into a few sessions for D seconds.
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
    scenarios::{closed_loop, create_run, post_event, stop_run},
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
    let api = t.api.clone();
    let mut lat = closed_loop(concurrency, deadline, &done, &errors, move |w, i| {
        let (api, sessions) = (api.clone(), sessions.clone());
        async move {
            let sid = &sessions[(w + i) % sessions.len()];
            let ev = Event::message(sid, "assistant", "bench ingest");
            post_event(&api, &ev, None).await
        }
    })
    .await?;
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
