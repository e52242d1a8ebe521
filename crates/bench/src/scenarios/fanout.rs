//! `fanout`: S SSE subscribers on one session, then M events posted back to back, each
//! carrying a unique marker and its send time in `reason`. Every subscriber must see
//! every event exactly once; delivery lag is receive time minus send time (one clock:
//! the bench's own monotonic one).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use aof_wire::Event;

use crate::{
    report::{latency_fields, round3, Errors, Progress},
    scenarios::{bench_tag, create_run, open_feed, post_event, read_feed, stop_run},
    target::{Api, Target},
    Outcome, Params,
};

/// How many subscribers may be connecting at once (keeps the accept backlog sane).
const CONNECT_AT_ONCE: usize = 64;

/// What one subscriber saw.
struct Seen {
    /// Deliveries per event index.
    counts: Vec<u32>,
    lags: Vec<Duration>,
}

pub(crate) async fn run(t: &Target, p: &Params) -> anyhow::Result<Outcome> {
    let subscribers = p.pick(p.subscribers, 200, 10).max(1);
    let messages = p.pick(p.messages, 100, 20).max(1);
    let grace = p.secs(p.timeout, 30.0, 10.0);
    let run = create_run(&t.api, &bench_tag())
        .await
        .map_err(anyhow::Error::msg)?;
    let sid = run.session_id.clone();
    let marker = format!("aof-bench-{}:", uuid::Uuid::new_v4().simple());
    let url = t.api.url(&format!(
        "/sse/sessions?session_id={sid}&include_init=false"
    ));
    let base = Instant::now();
    let errors = Arc::new(Errors::default());
    let received = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let gate = Arc::new(Semaphore::new(CONNECT_AT_ONCE));
    let (ready_tx, mut ready_rx) = mpsc::channel::<bool>(subscribers);
    let subs: Vec<_> = (0..subscribers)
        .map(|_| {
            let sub = Subscriber {
                api: t.api.clone(),
                url: url.clone(),
                marker: marker.clone(),
                messages,
                base,
                received: received.clone(),
            };
            tokio::spawn(sub.run(gate.clone(), ready_tx.clone(), stop.clone()))
        })
        .collect();
    drop(ready_tx);
    let mut connected = 0usize;
    while let Some(ok) = ready_rx.recv().await {
        connected += usize::from(ok);
    }
    let total = (connected * messages) as u64;
    let progress = Progress::start("fanout", received.clone(), Some(total), "deliveries");
    let mut posted = vec![false; messages];
    let post_start = Instant::now();
    for (i, ok) in posted.iter_mut().enumerate() {
        let nanos = base.elapsed().as_nanos();
        let ev = Event {
            reason: Some(format!("{marker}{i}:{nanos}")),
            ..Event::new("bench_fanout", &sid)
        };
        match post_event(&t.api, &ev, None).await {
            Ok(()) => *ok = true,
            Err(e) => errors.add(e),
        }
    }
    let post_wall = post_start.elapsed();
    let give_up = Instant::now() + grace;
    while received.load(Ordering::Relaxed) < total && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A moment more for duplicates that would trail the last delivery.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    drop(progress);
    let (mut missing, mut duplicated, mut lags, mut short) = (0u64, 0u64, Vec::new(), 0u64);
    for s in subs {
        match s.await? {
            Ok(seen) => {
                let mut lost = 0;
                for (i, &c) in seen.counts.iter().enumerate() {
                    if posted[i] && c == 0 {
                        lost += 1;
                    }
                    duplicated += u64::from(c.saturating_sub(1));
                }
                missing += lost;
                short += u64::from(lost > 0);
                lags.extend(seen.lags);
            }
            Err(e) => errors.add(e),
        }
    }
    stop_run(&t.api, &run.run_id).await;
    let n_posted = posted.iter().filter(|&&p| p).count();
    let mut results = vec![
        ("subscribers_connected".to_string(), json!(connected)),
        ("events_posted".into(), json!(n_posted)),
        (
            "post_rate_per_s".into(),
            json!(round3(n_posted as f64 / post_wall.as_secs_f64().max(1e-9))),
        ),
        ("deliveries".into(), json!(lags.len())),
        ("missing".into(), json!(missing)),
        ("duplicated".into(), json!(duplicated)),
        ("subscribers_with_missing".into(), json!(short)),
    ];
    results.extend(latency_fields("lag", &mut lags, &[50, 99]));
    results.extend(errors.fields());
    Ok(Outcome {
        parameters: json!({"subscribers": subscribers, "messages": messages}),
        results,
        ok: errors.count() == 0 && missing == 0 && duplicated == 0 && connected == subscribers,
        ..Outcome::default()
    })
}

struct Subscriber {
    api: Api,
    url: String,
    marker: String,
    messages: usize,
    /// The instant send times in `reason` are measured from.
    base: Instant,
    /// Deliveries across all subscribers, for the progress line and the end condition.
    received: Arc<AtomicU64>,
}

impl Subscriber {
    /// Connects (at most `CONNECT_AT_ONCE` at a time), says so on `ready`, then reads
    /// frames until `stop` is cancelled.
    async fn run(
        self,
        gate: Arc<Semaphore>,
        ready: mpsc::Sender<bool>,
        stop: CancellationToken,
    ) -> Result<Seen, String> {
        let mut seen = Seen {
            counts: vec![0; self.messages],
            lags: Vec::new(),
        };
        let resp = {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            open_feed(&self.api, &self.url).await
        };
        let _ = ready.send(resp.is_ok()).await;
        drop(ready);
        read_feed(resp?, &stop, |frame| {
            if frame.event != aof_wire::sse::EVENT {
                return;
            }
            let Some((i, sent)) = self.parse(&frame.data) else {
                return;
            };
            let now = self.base.elapsed();
            seen.lags.push(now.saturating_sub(sent));
            seen.counts[i] += 1;
            self.received.fetch_add(1, Ordering::Relaxed);
        })
        .await?;
        Ok(seen)
    }

    /// `(index, send time)` from an `event` frame's `{"data": {…, "reason": marker i:nanos}}`.
    fn parse(&self, data: &str) -> Option<(usize, Duration)> {
        let v: serde_json::Value = serde_json::from_str(data).ok()?;
        let reason = v.get("data")?.get("reason")?.as_str()?;
        let (i, nanos) = reason.strip_prefix(&self.marker)?.split_once(':')?;
        let i: usize = i.parse().ok()?;
        let nanos: u64 = nanos.parse().ok()?;
        (i < self.messages).then_some((i, Duration::from_nanos(nanos)))
    }
}
