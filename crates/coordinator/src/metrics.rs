//! Prometheus text exposition. Counters live here; run/session/event counts are read
//! from the store at scrape time so they survive restarts.

use std::{
    fmt::Write,
    sync::atomic::{AtomicI64, AtomicU64, Ordering},
};

use aof_store::Counts;
use aof_wire::approval::Resolution;

/// Upper bounds (seconds) of the dispatch latency histogram.
const DISPATCH: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];
/// Upper bounds (seconds) of the time to an approval's decision: people take minutes.
const DECISION: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0,
];

/// A cumulative Prometheus histogram with fixed bounds.
struct Histogram<const N: usize> {
    bounds: [f64; N],
    buckets: [AtomicU64; N],
    count: AtomicU64,
    /// Sum in microseconds, to stay integral.
    sum_us: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: [f64; N]) -> Self {
        Histogram {
            bounds,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    fn observe(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        for (i, b) in self.bounds.iter().enumerate() {
            if seconds <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// The series of `name`, with `labels` (`k="v",` each, or empty) before `le`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (i, b) in self.bounds.iter().enumerate() {
            let n = self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{b}\"}} {n}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let plain = labels.trim_end_matches(',');
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(plain));
        let _ = writeln!(out, "{name}_count{} {count}", braces(plain));
    }
}

pub struct Metrics {
    pub sse_clients: AtomicI64,
    /// Runner long-polls currently parked, waiting for work.
    pub polls_waiting: AtomicI64,
    pub events_written: AtomicU64,
    dispatch: Histogram<{ DISPATCH.len() }>,
    /// Time to decision, by who decided: a reviewer, the timeout, the run's end.
    decisions: [Histogram<{ DECISION.len() }>; 3],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            sse_clients: AtomicI64::new(0),
            polls_waiting: AtomicI64::new(0),
            events_written: AtomicU64::new(0),
            dispatch: Histogram::new(DISPATCH),
            decisions: std::array::from_fn(|_| Histogram::new(DECISION)),
        }
    }
}

const RESOLUTIONS: [Resolution; 3] = Resolution::ALL;

impl Metrics {
    /// Time from a run becoming claimable to a runner receiving it.
    pub fn observe_dispatch(&self, seconds: f64) {
        self.dispatch.observe(seconds);
    }

    /// Time from an approval's request to its decision.
    pub fn observe_approval(&self, resolution: Option<Resolution>, seconds: f64) {
        let r = resolution.unwrap_or(Resolution::Reviewer);
        if let Some(i) = RESOLUTIONS.iter().position(|x| *x == r) {
            self.decisions[i].observe(seconds);
        }
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
        self.dispatch
            .render(&mut out, "aof_dispatch_latency_seconds", "");
        let _ = writeln!(out, "# HELP aof_approvals_pending Tool calls waiting for a decision.\n# TYPE aof_approvals_pending gauge\naof_approvals_pending {}", counts.approvals_pending);
        let _ = writeln!(out, "# HELP aof_approval_decision_seconds Approval requested to decided, by resolution (reviewer, timeout, run_ended).\n# TYPE aof_approval_decision_seconds histogram");
        for (r, h) in RESOLUTIONS.iter().zip(&self.decisions) {
            let label = format!("resolution=\"{}\",", r.as_str());
            h.render(&mut out, "aof_approval_decision_seconds", &label);
        }
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
        assert!(
            text.contains("aof_dispatch_latency_seconds_sum 2.003"),
            "{text}"
        );
    }

    #[test]
    fn approvals_pending_and_time_to_decision_by_resolution() {
        let m = Metrics::default();
        m.observe_approval(Some(Resolution::Reviewer), 42.0);
        m.observe_approval(Some(Resolution::Timeout), 900.0);
        let counts = Counts {
            approvals_pending: 3,
            ..Counts::default()
        };
        let text = m.render(&counts);
        assert!(text.contains("aof_approvals_pending 3"), "{text}");
        for line in [
            "aof_approval_decision_seconds_bucket{resolution=\"reviewer\",le=\"30\"} 0",
            "aof_approval_decision_seconds_bucket{resolution=\"reviewer\",le=\"60\"} 1",
            "aof_approval_decision_seconds_count{resolution=\"reviewer\"} 1",
            "aof_approval_decision_seconds_bucket{resolution=\"timeout\",le=\"900\"} 1",
            "aof_approval_decision_seconds_count{resolution=\"run_ended\"} 0",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
