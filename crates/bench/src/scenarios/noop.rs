//! `noop`: C clients hammering `GET /health` for D seconds — the request rate this client
//! and the HTTP stack manage with no store work, the ceiling for every other scenario.

use std::{
    sync::{atomic::AtomicU64, Arc},
    time::Instant,
};

use serde_json::json;

use crate::{
    report::{latency_fields, round3, Errors, Progress},
    scenarios::{check, closed_loop},
    target::{Target, REQUEST_TIMEOUT},
    Outcome, Params,
};

pub(crate) async fn run(t: &Target, p: &Params) -> anyhow::Result<Outcome> {
    let concurrency = p.pick(p.concurrency, 32, 4).max(1);
    let duration = p.secs(p.duration, 10.0, 1.0);
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Errors::default());
    let _progress = Progress::start("noop", done.clone(), None, "requests");
    let url = t.api.url("/health");
    let start = Instant::now();
    let deadline = start + duration;
    let http = t.api.http.clone();
    let mut lat = closed_loop(concurrency, deadline, &done, &errors, move |_, _| {
        let req = http.get(&url).timeout(REQUEST_TIMEOUT).send();
        async move { check(req.await, "GET /health").await }
    })
    .await?;
    let wall = start.elapsed().as_secs_f64();
    let n = lat.len() as u64;
    let mut results = vec![
        ("requests".to_string(), json!(n)),
        ("requests_per_s".into(), json!(round3(n as f64 / wall))),
    ];
    results.extend(latency_fields("latency", &mut lat, &[50, 99]));
    results.extend(errors.fields());
    Ok(Outcome {
        parameters: json!({"concurrency": concurrency, "duration_s": duration.as_secs_f64()}),
        results,
        ok: errors.count() == 0 && n > 0,
        ..Outcome::default()
    })
}
