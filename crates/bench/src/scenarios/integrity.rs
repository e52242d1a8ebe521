//! Event integrity of the lifecycle's runs, checked after the load:
//! - stored: each completed run's session, listed by `GET /sessions/{id}/events` on the
//!   coordinator that created it, holds the E events its runner posted exactly once and
//!   in the order posted, and the listing's `id`s and `seq`s strictly increase;
//! - live (with several coordinators, or `--sse-check`): one subscriber per coordinator
//!   on the global feed (`GET /sse/sessions`) for the whole load sees frame `id`s
//!   (cursors) strictly increase, never twice, and every stored event cursor of every
//!   run whose database it serves (all of them when the coordinators share PostgreSQL).

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::{stream, StreamExt};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use aof_wire::{Event, StoredEvent};

use crate::{
    report::Errors,
    scenarios::{open_feed, read_feed},
    target::{Api, REQUEST_TIMEOUT},
};

/// Listings in flight at once after the load.
const LIST_AT_ONCE: usize = 8;
/// How long the live subscribers may take, after the listings, to reach the last event.
const CATCH_UP: Duration = Duration::from_secs(30);

/// The text of the runner's `n`-th event of a run, and back.
pub(crate) fn event_text(n: usize) -> String {
    format!("bench event {n}")
}

fn event_index(e: &Event) -> Option<usize> {
    if e.event_type != aof_wire::event::types::MESSAGE {
        return None;
    }
    e.text()?.strip_prefix("bench event ")?.parse().ok()
}

/// Events lost, seen more than once, or seen out of order.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
    }

    fn clean(&self) -> bool {
        *self == Tally::default()
    }

    fn fields(&self, prefix: &str) -> Vec<(String, Value)> {
        vec![
            (format!("{prefix}_lost"), json!(self.lost)),
            (format!("{prefix}_duplicated"), json!(self.duplicated)),
            (format!("{prefix}_reordered"), json!(self.reordered)),
        ]
    }
}

/// The indices (0..`expected`) of a run's events in the order they were listed. Lost:
/// an index never seen. Duplicated: every sighting after an index's first, and any index
/// the runner never posted. Reordered: a first sighting below an earlier one.
pub(crate) fn check_posted(expected: usize, seen: &[usize]) -> Tally {
    let mut counts = vec![0u64; expected];
    let mut t = Tally::default();
    let mut highest: Option<usize> = None;
    for &i in seen {
        let Some(c) = counts.get_mut(i) else {
            t.duplicated += 1;
            continue;
        };
        *c += 1;
        if *c > 1 {
            t.duplicated += 1;
            continue;
        }
        if highest.is_some_and(|h| i < h) {
            t.reordered += 1;
        }
        highest = highest.max(Some(i));
    }
    t.lost = counts.iter().filter(|&&c| c == 0).count() as u64;
    t
}

/// Cursors along a stream, which must strictly increase: one seen before is duplicated,
/// a new one below the highest so far is reordered. Nothing is lost here (see [`missed`]).
pub(crate) fn check_cursors(stream: &[i64]) -> Tally {
    let mut seen = HashSet::with_capacity(stream.len());
    let mut t = Tally::default();
    let mut highest = i64::MIN;
    for &c in stream {
        if !seen.insert(c) {
            t.duplicated += 1;
        } else if c < highest {
            t.reordered += 1;
        }
        highest = highest.max(c);
    }
    t
}

/// Stored cursors a subscriber never delivered.
pub(crate) fn missed(stored: &[i64], delivered: &[i64]) -> u64 {
    let delivered: HashSet<i64> = delivered.iter().copied().collect();
    stored.iter().filter(|c| !delivered.contains(c)).count() as u64
}

/// One run's listing: [`check_posted`] on the runner's events, and the whole listing's
/// `id`s and `seq`s must strictly increase. A fault seen by both (a row listed twice) is
/// counted once: the larger of the two counts.
pub(crate) fn check_listing(events: &[StoredEvent], expected: usize) -> Tally {
    let seen: Vec<usize> = events
        .iter()
        .filter_map(|e| event_index(&e.event))
        .collect();
    let mut t = check_posted(expected, &seen);
    let ids = check_cursors(&events.iter().map(|e| e.id).collect::<Vec<_>>());
    let seqs = check_cursors(&events.iter().map(|e| e.seq).collect::<Vec<_>>());
    t.duplicated = t.duplicated.max(ids.duplicated).max(seqs.duplicated);
    t.reordered = t.reordered.max(ids.reordered).max(seqs.reordered);
    t
}

/// What one subscriber delivered: every frame's cursor in order, and why it ended early.
type Delivered = (Vec<i64>, Option<String>);

/// One SSE subscriber per coordinator on the global feed, from before the first run.
pub(crate) struct Watchers {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<Delivered>>,
    /// The highest cursor each subscriber has seen so far.
    heads: Vec<Arc<AtomicI64>>,
}

impl Watchers {
    /// Subscribes to each coordinator's feed; returns once every one has answered.
    pub(crate) async fn start(apis: &[Api]) -> anyhow::Result<Watchers> {
        let stop = CancellationToken::new();
        let (mut tasks, mut heads) = (Vec::new(), Vec::new());
        for api in apis {
            let url = api.url("/sse/sessions?include_init=false");
            let resp = open_feed(api, &url).await.map_err(anyhow::Error::msg)?;
            let head = Arc::new(AtomicI64::new(i64::MIN));
            let (stop, seen) = (stop.clone(), head.clone());
            tasks.push(tokio::spawn(async move {
                let mut cursors = Vec::new();
                let end = read_feed(resp, &stop, |frame| {
                    if let Some(c) = frame.id.and_then(|id| id.parse::<i64>().ok()) {
                        cursors.push(c);
                        seen.fetch_max(c, Ordering::Relaxed);
                    }
                })
                .await;
                (cursors, end.err())
            }));
            heads.push(head);
        }
        Ok(Watchers { stop, tasks, heads })
    }

    /// Waits until every subscriber has seen cursor `upto` (or [`CATCH_UP`]), then
    /// stops them and returns what each delivered.
    async fn finish(self, upto: i64) -> Vec<Delivered> {
        let give_up = Instant::now() + CATCH_UP;
        while Instant::now() < give_up
            && self.heads.iter().any(|h| h.load(Ordering::Relaxed) < upto)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A moment more for duplicates that would trail the last delivery.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.stop.cancel();
        let mut out = Vec::new();
        for task in self.tasks {
            out.push(
                task.await
                    .unwrap_or_else(|e| (Vec::new(), Some(e.to_string()))),
            );
        }
        out
    }
}

/// What the checks found.
pub(crate) struct Checked {
    runs: u64,
    events: u64,
    stored: Tally,
    /// Subscribers, frames delivered, and their tally, when checked live.
    live: Option<(usize, u64, Tally)>,
    /// Whether every coordinator serves every other's sessions (one shared database).
    shared: Option<bool>,
    errors: Errors,
}

impl Checked {
    pub(crate) fn ok(&self) -> bool {
        self.errors.count() == 0
            && self.stored.clean()
            && self.live.is_none_or(|(_, _, t)| t.clean())
    }

    pub(crate) fn live(&self) -> bool {
        self.live.is_some()
    }

    pub(crate) fn fields(&self) -> Vec<(String, Value)> {
        let mut out = vec![
            ("runs_checked".to_string(), json!(self.runs)),
            ("events_checked".into(), json!(self.events)),
        ];
        out.extend(self.stored.fields("events"));
        if let Some((subscribers, frames, t)) = self.live {
            out.push(("sse_subscribers".into(), json!(subscribers)));
            out.push(("sse_frames".into(), json!(frames)));
            out.extend(t.fields("sse"));
        }
        if let Some(shared) = self.shared {
            out.push(("store_shared".into(), json!(shared)));
        }
        out.push(("check_errors".into(), json!(self.errors.count())));
        if let Some((_, first)) = self.errors.fields().into_iter().nth(1) {
            out.push(("first_check_error".into(), first));
        }
        out
    }
}

/// Checks the completed runs' sessions (`(coordinator that created it, session id)`),
/// each of whose runners posted `per_run` events, stored and (with `live`) as delivered.
pub(crate) async fn check(
    apis: &[Api],
    sessions: &[(usize, String)],
    per_run: usize,
    live: Option<Watchers>,
) -> Checked {
    let errors = Errors::default();
    let listed: Vec<(usize, Result<Vec<StoredEvent>, String>)> = stream::iter(sessions)
        .map(|(k, sid)| async move { (*k, list_events(&apis[*k], sid).await) })
        .buffer_unordered(LIST_AT_ONCE)
        .collect()
        .await;
    let mut stored = Tally::default();
    // Stored cursors by the coordinator that created the run.
    let mut cursors: Vec<Vec<i64>> = vec![Vec::new(); apis.len()];
    for (k, events) in listed {
        match events {
            Ok(events) => {
                stored.add(check_listing(&events, per_run));
                cursors[k].extend(events.iter().map(|e| e.id));
            }
            Err(e) => errors.add(e),
        }
    }
    let serves = serves(apis, sessions, &errors).await;
    let shared = (apis.len() > 1).then(|| serves.iter().flatten().all(|&s| s));
    let live = match live {
        None => None,
        Some(w) => {
            let upto = cursors.iter().flatten().copied().max().unwrap_or(i64::MIN);
            let delivered = w.finish(upto).await;
            let (mut frames, mut tally) = (0, Tally::default());
            for (j, (stream, end)) in delivered.iter().enumerate() {
                if let Some(e) = end {
                    errors.add(format!("{}: {e}", apis[j].base));
                }
                frames += stream.len() as u64;
                let mut t = check_cursors(stream);
                for (k, c) in cursors.iter().enumerate() {
                    if serves[j][k] {
                        t.lost += missed(c, stream);
                    }
                }
                tally.add(t);
            }
            Some((delivered.len(), frames, tally))
        }
    };
    Checked {
        runs: sessions.len() as u64,
        events: (sessions.len() * per_run) as u64,
        stored,
        live,
        shared,
        errors,
    }
}

/// `serves[j][k]`: coordinator `j` knows a session created on `k` (one probe per pair),
/// i.e. they share a database. Separate SQLite coordinators do not; a subscriber is only
/// expected to deliver what its own database holds.
async fn serves(apis: &[Api], sessions: &[(usize, String)], errors: &Errors) -> Vec<Vec<bool>> {
    let mut out = vec![vec![true; apis.len()]; apis.len()];
    for (j, api) in apis.iter().enumerate() {
        for (k, row) in out[j].iter_mut().enumerate() {
            let Some((_, sid)) = sessions.iter().find(|(c, _)| *c == k) else {
                continue;
            };
            if j == k {
                continue;
            }
            let resp = api
                .http
                .get(api.url(&format!("/sessions/{sid}")))
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => {}
                Ok(r) if r.status().as_u16() == 404 => *row = false,
                Ok(r) => errors.add(format!("GET /sessions/{{id}} answered {}", r.status())),
                Err(e) => errors.add(format!("GET /sessions/{{id}}: {e}")),
            }
        }
    }
    out
}

async fn list_events(api: &Api, session_id: &str) -> Result<Vec<StoredEvent>, String> {
    const WHAT: &str = "GET /sessions/{id}/events";
    let resp = api
        .http
        .get(api.url(&format!("/sessions/{session_id}/events")))
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("{WHAT}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(format!("{WHAT} answered {status}: {body}"));
    }
    let list: Listing = resp.json().await.map_err(|e| format!("{WHAT} body: {e}"))?;
    // The AOF reference lists events without `id` and `seq`: its order is the listing's
    // own, so each such event stands at its position (the content check still counts
    // the runner's events lost, repeated or out of order).
    let at = |i: usize, v: Option<i64>| v.unwrap_or(i as i64 + 1);
    let events = list
        .events
        .into_iter()
        .enumerate()
        .map(|(i, e)| StoredEvent {
            id: at(i, e.id),
            seq: at(i, e.seq),
            run_id: e.run_id,
            event: e.event,
        });
    Ok(events.collect())
}

/// `GET /sessions/{id}/events` as ours (`EventList`) or the AOF reference answers it.
#[derive(serde::Deserialize)]
struct Listing {
    events: Vec<Listed>,
}

#[derive(serde::Deserialize)]
struct Listed {
    #[serde(default)]
    id: Option<i64>,
    #[serde(default)]
    seq: Option<i64>,
    #[serde(default)]
    run_id: Option<String>,
    #[serde(flatten)]
    event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing as the coordinator answers it: `run_start`, the runner's events with
    /// the given indices, `run_completed`; ids from `first_id` up, seq from 1.
    fn listing(first_id: i64, indices: &[usize]) -> Vec<StoredEvent> {
        let sid = "4f1c2b0e-0000-7000-8000-000000000001";
        let mut events = vec![Event::new(aof_wire::event::types::RUN_START, sid)];
        events.extend(
            indices
                .iter()
                .map(|&n| Event::message(sid, "assistant", &event_text(n))),
        );
        events.push(Event::new(aof_wire::event::types::RUN_COMPLETED, sid));
        (events.into_iter().enumerate())
            .map(|(i, event)| StoredEvent {
                id: first_id + i as i64,
                seq: 1 + i as i64,
                run_id: Some("run-1".into()),
                event,
            })
            .collect()
    }

    #[test]
    fn a_clean_run_listing_passes() {
        assert_eq!(
            check_listing(&listing(40, &[0, 1, 2, 3, 4]), 5),
            Tally::default()
        );
        // The coordinator's own events and other messages are not the runner's.
        let mut l = listing(40, &[0, 1]);
        l[1].event = Event::message(&l[1].event.session_id, "user", "hello");
        assert_eq!(check_listing(&l, 2).lost, 1);
    }

    #[test]
    fn lost_duplicated_and_reordered_events_are_counted() {
        let t = check_listing(&listing(40, &[0, 2, 4]), 5);
        assert_eq!(
            t,
            Tally {
                lost: 2,
                duplicated: 0,
                reordered: 0
            }
        );
        let t = check_listing(&listing(40, &[0, 1, 1, 2, 3, 4, 4]), 5);
        assert_eq!(
            t,
            Tally {
                lost: 0,
                duplicated: 2,
                reordered: 0
            }
        );
        let t = check_listing(&listing(40, &[1, 0, 2, 4, 3]), 5);
        assert_eq!(
            t,
            Tally {
                lost: 0,
                duplicated: 0,
                reordered: 2
            }
        );
        // An index the runner never posted is an extra copy.
        assert_eq!(check_posted(2, &[0, 1, 7]).duplicated, 1);
    }

    #[test]
    fn a_listing_out_of_cursor_order_is_reordered_and_a_repeated_row_counted_once() {
        let mut l = listing(40, &[0, 1, 2]);
        l.swap(1, 2); // rows 41 and 42 listed the wrong way round, content too
        let t = check_listing(&l, 3);
        assert_eq!(
            t,
            Tally {
                lost: 0,
                duplicated: 0,
                reordered: 1
            }
        );
        let mut l = listing(40, &[0, 1, 2]);
        l.insert(2, l[1].clone()); // the same row twice
        let t = check_listing(&l, 3);
        assert_eq!(
            t,
            Tally {
                lost: 0,
                duplicated: 1,
                reordered: 0
            }
        );
    }

    #[test]
    fn a_live_stream_must_strictly_increase_and_hold_every_stored_cursor() {
        assert_eq!(check_cursors(&[3, 5, 9, 12]), Tally::default());
        let t = check_cursors(&[3, 5, 5, 9, 7, 12, 3]);
        assert_eq!(
            t,
            Tally {
                lost: 0,
                duplicated: 2,
                reordered: 1
            }
        );
        assert_eq!(missed(&[5, 7, 9, 11], &[3, 5, 9, 12]), 2);
        assert_eq!(missed(&[], &[1]), 0);
    }

    #[test]
    fn tallies_add_and_show_under_a_prefix() {
        let mut t = Tally {
            lost: 1,
            duplicated: 0,
            reordered: 2,
        };
        t.add(Tally {
            lost: 1,
            duplicated: 3,
            reordered: 0,
        });
        assert!(!t.clean());
        assert_eq!(
            t.fields("sse"),
            vec![
                ("sse_lost".to_string(), json!(2)),
                ("sse_duplicated".to_string(), json!(3)),
                ("sse_reordered".to_string(), json!(2)),
            ]
        );
    }
}
