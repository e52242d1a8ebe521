//! One module per scenario, plus the few requests several of them make.

pub mod fanout;
pub mod ingest;
mod integrity;
pub mod lifecycle;
pub mod noop;
pub mod soak;

use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use aof_wire::{sse::parse::Frame, Event, RunCreateResponse};

use crate::{
    report::Errors,
    target::{Api, REQUEST_TIMEOUT},
};

/// A closed loop: `workers` tasks each call `op(worker, i)` back to back until
/// `deadline`, counting successes in `done`, failures in `errors`; returns the
/// latencies of the successful calls.
pub(crate) async fn closed_loop<F, Fut>(
    workers: usize,
    deadline: Instant,
    done: &Arc<AtomicU64>,
    errors: &Arc<Errors>,
    op: F,
) -> anyhow::Result<Vec<Duration>>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let (op, done, errors) = (op.clone(), done.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<Duration> = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let sent = Instant::now();
                match op(w, i).await {
                    Ok(()) => {
                        lat.push(sent.elapsed());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.add(e),
                }
                i += 1;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await?);
    }
    Ok(lat)
}

/// `POST /runs` for a `start_session` run with prompt `bench`, demanding runner tag
/// `tag`; expects 201. The tag keeps the coordinator's own runners (`aof up` has one)
/// away from the bench's runs: only runners registered with it may claim them.
pub(crate) async fn create_run(t: &Api, tag: &str) -> Result<RunCreateResponse, String> {
    let resp = t
        .http
        .post(t.url("/runs"))
        .timeout(REQUEST_TIMEOUT)
        .json(&serde_json::json!({
            "type": "start_session",
            "parameters": {"prompt": "bench"},
            "additional_demands": {"tags": [tag]},
        }))
        .send()
        .await
        .map_err(|e| format!("POST /runs: {e}"))?;
    let status = resp.status();
    if status.as_u16() != 201 {
        let body = resp.text().await.unwrap_or_default();
        return Err(format!("POST /runs answered {status}: {body}"));
    }
    resp.json()
        .await
        .map_err(|e| format!("POST /runs body: {e}"))
}

/// A tag no other runner has, for [`create_run`].
pub(crate) fn bench_tag() -> String {
    format!("aof-bench-{}", uuid::Uuid::new_v4().simple())
}

/// `POST /runs/{id}/stop`, best effort: leaves no pending runs behind on a shared coordinator.
pub(crate) async fn stop_run(t: &Api, run_id: &str) {
    let _ = t
        .http
        .post(t.url(&format!("/runs/{run_id}/stop")))
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await;
}

/// `POST /sessions/{sid}/events` with optional fencing headers; any 2xx is success.
pub(crate) async fn post_event(
    t: &Api,
    event: &Event,
    run: Option<(&str, Option<&str>)>,
) -> Result<(), String> {
    let mut rb = t
        .http
        .post(t.url(&format!("/sessions/{}/events", event.session_id)))
        .timeout(REQUEST_TIMEOUT)
        .json(event);
    if let Some((run_id, token)) = run {
        rb = rb.header(aof_wire::RUN_HEADER, run_id);
        if let Some(token) = token {
            rb = rb.header(aof_wire::LEASE_HEADER, token);
        }
    }
    check(rb.send().await, "POST /sessions/{id}/events").await
}

/// `POST /sessions/{sid}/events/batch` with a body made beforehand holding `n` events;
/// success is a 2xx whose answer lists `n` stored events.
pub(crate) async fn post_batch(
    t: &Api,
    session_id: &str,
    body: bytes::Bytes,
    n: usize,
) -> Result<(), String> {
    const WHAT: &str = "POST /sessions/{id}/events/batch";
    let resp = t
        .http
        .post(t.url(&format!("/sessions/{session_id}/events/batch")))
        .timeout(REQUEST_TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let resp = match resp {
        Ok(r) if r.status().is_success() => r,
        other => return check(other, WHAT).await,
    };
    let posted: aof_wire::api::EventBatchPosted =
        resp.json().await.map_err(|e| format!("{WHAT} body: {e}"))?;
    let stored = posted.events.iter().filter(|e| e.id.is_some()).count();
    if stored != n {
        return Err(format!("{WHAT}: {stored} of {n} events stored"));
    }
    Ok(())
}

/// `GET url` (an `/sse/sessions` URL) as an event stream, once the coordinator has
/// answered 2xx: it subscribes before it answers, so from then on nothing is missed.
pub(crate) async fn open_feed(t: &Api, url: &str) -> Result<reqwest::Response, String> {
    match t
        .http
        .get(url)
        .header("accept", "text/event-stream")
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => Ok(r),
        Ok(r) => Err(format!("GET /sse/sessions answered {}", r.status())),
        Err(e) => Err(format!("GET /sse/sessions: {e}")),
    }
}

/// Hands each frame of an [`open_feed`] stream to `f` until `stop` is cancelled (reading
/// on after the last expected frame, so late duplicates count too). A stream that ends
/// or fails before `stop` is an error.
pub(crate) async fn read_feed(
    resp: reqwest::Response,
    stop: &CancellationToken,
    mut f: impl FnMut(Frame),
) -> Result<(), String> {
    let mut stream = resp.bytes_stream();
    let mut parser = aof_wire::sse::parse::Parser::default();
    loop {
        let chunk = tokio::select! {
            c = stream.next() => c,
            _ = stop.cancelled() => return Ok(()),
        };
        match chunk {
            Some(Ok(c)) => parser.feed(&c).into_iter().for_each(&mut f),
            Some(Err(e)) => return Err(format!("SSE stream: {e}")),
            None => return Err("SSE stream ended early".into()),
        }
    }
}

/// Maps a response to `Ok` on 2xx, else a message with status and body.
pub(crate) async fn check(
    resp: Result<reqwest::Response, reqwest::Error>,
    what: &str,
) -> Result<(), String> {
    match resp {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            Err(format!("{what} answered {status}: {body}"))
        }
        Err(e) => Err(format!("{what}: {e}")),
    }
}
