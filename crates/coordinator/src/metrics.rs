//! Prometheus text exposition. Counters live here; run/session/event counts are read
//! from the store at scrape time so they survive restarts.

use std::{
    fmt::Write,
    sync::atomic::{AtomicI64, AtomicU64, Ordering},
};

use aof_store::Counts;

/// Upper bounds (seconds) of the dispatch latency histogram.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

#[derive(Default)]
pub struct Metrics {
    pub sse_clients: AtomicI64,
    /// Runner long-polls currently parked, waiting for work.
    pub polls_waiting: AtomicI64,
    pub events_written: AtomicU64,
    dispatch_buckets: [AtomicU64; BUCKETS.len()],
    dispatch_count: AtomicU64,
    /// Sum in microseconds, to stay integral.
    dispatch_sum_us: AtomicU64,
}

impl Metrics {
    /// Time from a run becoming claimable to a runner receiving it.
    pub fn observe_dispatch(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                self.dispatch_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.dispatch_count.fetch_add(1, Ordering::Relaxed);
        self.dispatch_sum_us
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn render(&self, counts: &Counts) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP aof_runs Runs by status.\n# TYPE aof_runs gauge"
        );
        for st in aof_core::RunStatus::ALL {
            let n = counts
                .runs_by_status
                .iter()
                .find(|(s, _)| *s == st)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "aof_runs{{status=\"{st}\"}} {n}");
        }
        let pending = counts
            .runs_by_status
            .iter()
            .find(|(s, _)| *s == aof_core::RunStatus::Pending)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "# HELP aof_queue_depth Runs waiting for a runner.\n# TYPE aof_queue_depth gauge\naof_queue_depth {pending}");
        let _ = writeln!(
            out,
            "# HELP aof_sessions Sessions by status.\n# TYPE aof_sessions gauge"
        );
        for st in aof_core::SessionStatus::ALL {
            let n = counts
                .sessions_by_status
                .iter()
                .find(|(s, _)| *s == st)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "aof_sessions{{status=\"{st}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP aof_events_stored Session events in the store.\n# TYPE aof_events_stored gauge\naof_events_stored {}", counts.events);
        let _ = writeln!(out, "# HELP aof_events_written_total Events written through this process.\n# TYPE aof_events_written_total counter\naof_events_written_total {}", self.events_written.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP aof_runners_online Runners with a recent heartbeat.\n# TYPE aof_runners_online gauge\naof_runners_online {}", counts.runners_online);
        let _ = writeln!(out, "# HELP aof_sse_clients Open SSE streams.\n# TYPE aof_sse_clients gauge\naof_sse_clients {}", self.sse_clients.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP aof_runner_polls_waiting Runner long-polls parked waiting for work.\n# TYPE aof_runner_polls_waiting gauge\naof_runner_polls_waiting {}", self.polls_waiting.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP aof_dispatch_latency_seconds Run created (or requeued) to runner receiving it.\n# TYPE aof_dispatch_latency_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "aof_dispatch_latency_seconds_bucket{{le=\"{b}\"}} {}",
                self.dispatch_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.dispatch_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "aof_dispatch_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "aof_dispatch_latency_seconds_sum {}",
            self.dispatch_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "aof_dispatch_latency_seconds_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe_dispatch(0.003);
        m.observe_dispatch(2.0);
        let text = m.render(&Counts::default());
        assert!(text.contains("aof_dispatch_latency_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("aof_dispatch_latency_seconds_bucket{le=\"5\"} 2"));
        assert!(text.contains("aof_dispatch_latency_seconds_count 2"));
        assert!(text.contains("aof_runs{status=\"pending\"} 0"));
    }
}
