//! What a scenario hands back and how it is shown: one JSON line for machines, a plain
//! two-column table for people, a progress line while running. Percentiles here too.
//! Printing is left to the caller (the CLI); this module only formats.

use std::{
    io::{IsTerminal, Write},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

/// The outcome of one scenario run.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: &'static str,
    /// The effective parameters (after `--smoke` and defaults).
    pub parameters: Value,
    pub durability: String,
    /// Measured values in the order they are shown.
    pub results: Vec<(String, Value)>,
    /// Peak RSS (VmHWM) of the coordinator's process, when known (the largest of
    /// several).
    pub coordinator_peak_rss_kb: Option<u64>,
    /// The same per coordinator, in `--url` order.
    pub coordinator_peak_rss_kb_each: Vec<Option<u64>>,
    /// CPU time of this process while the scenario ran.
    pub bench_cpu_s: f64,
    /// CPU time of the external coordinators (`--pid`) while the scenario ran, summed.
    pub coordinator_cpu_s: Option<f64>,
    /// The same per coordinator, in `--url` order.
    pub coordinator_cpu_s_each: Vec<Option<f64>>,
    /// CPU time of PostgreSQL's process tree (`--pg-pid`) while the scenario ran.
    pub pg_cpu_s: Option<f64>,
    /// Wall seconds the CPU figures cover (the load; `wall_s` may add checks after it).
    pub cpu_wall_s: f64,
    /// Runs completed, when the scenario makes runs: CPU per run is shown.
    pub runs: Option<u64>,
    pub wall_s: f64,
    pub in_process: bool,
    /// False when the scenario saw errors, lost or duplicated events, or did not finish.
    pub ok: bool,
}

impl Report {
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("scenario".into(), json!(self.scenario));
        m.insert("parameters".into(), self.parameters.clone());
        m.insert("durability".into(), json!(self.durability));
        for (k, v) in &self.results {
            m.insert(k.clone(), v.clone());
        }
        m.insert(
            "coordinator_peak_rss_kb".into(),
            json!(self.coordinator_peak_rss_kb),
        );
        m.insert("bench_cpu_s".into(), json!(round3(self.bench_cpu_s)));
        m.insert(
            "coordinator_cpu_s".into(),
            json!(self.coordinator_cpu_s.map(round3)),
        );
        m.insert("wall_s".into(), json!(round3(self.wall_s)));
        // In-process, the process CPU and RSS are the coordinator's and the client's together.
        m.insert(
            "cpu_scope".into(),
            json!(if self.in_process {
                "bench + in-process coordinator"
            } else {
                "bench client only"
            }),
        );
        m.insert(
            "coordinators".into(),
            json!(self.coordinator_cpu_s_each.len()),
        );
        m.insert(
            "coordinator_cpu_s_each".into(),
            json!(self
                .coordinator_cpu_s_each
                .iter()
                .map(|c| c.map(round3))
                .collect::<Vec<_>>()),
        );
        m.insert(
            "coordinator_peak_rss_kb_each".into(),
            json!(self.coordinator_peak_rss_kb_each),
        );
        // The postmaster and its descendants, exited ones included once reaped.
        m.insert("pg_cpu_s".into(), json!(self.pg_cpu_s.map(round3)));
        if let Some(per) = self.cpu_per_run() {
            m.insert(
                "cpu_ms_per_run".into(),
                json!({
                    "bench": per.bench,
                    "coordinators": per.coordinators,
                    "pg": per.pg,
                }),
            );
        }
        m.insert("cpu_wall_s".into(), json!(round3(self.cpu_wall_s)));
        m.insert("cpu_cores_used".into(), json!(self.cores_used()));
        m.insert("ok".into(), json!(self.ok));
        Value::Object(m)
    }

    /// A plain two-column table for stderr.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = vec![
            ("scenario".into(), self.scenario.into()),
            ("durability".into(), self.durability.clone()),
            ("parameters".into(), self.parameters.to_string()),
        ];
        for (k, v) in &self.results {
            rows.push((k.clone(), show(v)));
        }
        if let Some(kb) = self.coordinator_peak_rss_kb {
            rows.push((
                "coordinator peak RSS".into(),
                format!("{:.1} MiB", kb as f64 / 1024.0),
            ));
        }
        let scope = if self.in_process {
            " (bench + in-process coordinator)"
        } else {
            ""
        };
        rows.push((
            "bench CPU".into(),
            format!(
                "{:.2} s over {:.2} s wall{scope}",
                self.bench_cpu_s, self.wall_s
            ),
        ));
        if let Some(cpu) = self.coordinator_cpu_s {
            let each = if self.coordinator_cpu_s_each.len() > 1 {
                let each: Vec<String> = (self.coordinator_cpu_s_each.iter())
                    .map(|c| format!("{:.2}", c.unwrap_or_default()))
                    .collect();
                format!(" ({})", each.join(" + "))
            } else {
                String::new()
            };
            rows.push(("coordinator CPU".into(), format!("{cpu:.2} s{each}")));
        }
        if let Some(cpu) = self.pg_cpu_s {
            rows.push(("PostgreSQL CPU".into(), format!("{cpu:.2} s")));
        }
        if let Some(per) = self.cpu_per_run() {
            let show = |what: &str, v: Option<f64>| v.map(|v| format!("{what} {v:.3}"));
            let parts: Vec<String> = [
                show("bench", Some(per.bench)),
                show("coordinators", per.coordinators),
                show("PostgreSQL", per.pg),
            ]
            .into_iter()
            .flatten()
            .collect();
            rows.push(("CPU per run (ms)".into(), parts.join(", ")));
        }
        if !self.in_process && (self.coordinator_cpu_s.is_some() || self.pg_cpu_s.is_some()) {
            rows.push((
                "CPU cores used".into(),
                format!(
                    "{:.2} (bench + coordinators + PostgreSQL)",
                    self.cores_used()
                ),
            ));
        }
        rows.push(("ok".into(), self.ok.to_string()));
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            out.push_str(&format!("  {k:<width$}  {v}\n"));
        }
        out
    }
}

/// CPU milliseconds per completed run, by process group.
struct PerRun {
    bench: f64,
    coordinators: Option<f64>,
    pg: Option<f64>,
}

impl Report {
    fn cpu_per_run(&self) -> Option<PerRun> {
        let runs = self.runs.filter(|&n| n > 0)? as f64;
        let per = |s: f64| round3(s * 1000.0 / runs);
        Some(PerRun {
            bench: per(self.bench_cpu_s),
            coordinators: self.coordinator_cpu_s.map(per),
            pg: self.pg_cpu_s.map(per),
        })
    }

    /// Cores busy on average over the scenario: every measured process's CPU / wall.
    fn cores_used(&self) -> f64 {
        let cpu =
            self.bench_cpu_s + self.coordinator_cpu_s.unwrap_or(0.0) + self.pg_cpu_s.unwrap_or(0.0);
        round3(cpu / self.cpu_wall_s.max(1e-9))
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Milliseconds with microsecond resolution.
pub fn ms(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1000.0)
}

/// The `p`-th percentile (0–100) of an ascending slice, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `{prefix}_p50_ms`, … for each of `ps`, plus `{prefix}_max_ms`; sorts `samples`.
pub fn latency_fields(prefix: &str, samples: &mut [Duration], ps: &[u32]) -> Vec<(String, Value)> {
    samples.sort_unstable();
    let mut out: Vec<(String, Value)> = ps
        .iter()
        .map(|&p| {
            (
                format!("{prefix}_p{p}_ms"),
                json!(ms(percentile(samples, f64::from(p)))),
            )
        })
        .collect();
    out.push((
        format!("{prefix}_max_ms"),
        json!(ms(samples.last().copied().unwrap_or_default())),
    ));
    out
}

/// Counts failed requests and keeps the first message, so a broken run says why.
#[derive(Default)]
pub struct Errors {
    count: AtomicU64,
    /// First error seen; written by any task, read once at the end.
    first: Mutex<Option<String>>,
}

impl Errors {
    pub fn add(&self, what: impl std::fmt::Display) {
        if self.count.fetch_add(1, Ordering::Relaxed) == 0 {
            if let Ok(mut f) = self.first.lock() {
                *f = Some(what.to_string());
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// `errors` and, when there were any, `first_error`.
    pub fn fields(&self) -> Vec<(String, Value)> {
        let mut out = vec![("errors".to_string(), json!(self.count()))];
        if let Some(first) = self.first.lock().ok().and_then(|f| f.clone()) {
            out.push(("first_error".into(), json!(first)));
        }
        out
    }
}

/// A progress line on stderr (rewritten in place on a terminal, one line a second
/// otherwise) until dropped.
pub struct Progress {
    /// Cancelled on drop; the ticker task ends with it.
    stop: CancellationToken,
}

impl Progress {
    /// `done` is bumped by the scenario; `total` (if known) and `unit` label it.
    pub fn start(
        label: &'static str,
        done: Arc<AtomicU64>,
        total: Option<u64>,
        unit: &'static str,
    ) -> Progress {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let tty = std::io::stderr().is_terminal();
        let every = Duration::from_millis(if tty { 250 } else { 1000 });
        tokio::spawn(async move {
            let t0 = Instant::now();
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = token.cancelled() => break,
                }
                let n = done.load(Ordering::Relaxed);
                let of = total.map(|t| format!("/{t}")).unwrap_or_default();
                let secs = t0.elapsed().as_secs_f64();
                let rate = n as f64 / secs.max(1e-9);
                let line = format!("[{label}] {n}{of} {unit}, {secs:.1} s, {rate:.0} {unit}/s");
                let mut err = std::io::stderr().lock();
                let _ = if tty {
                    write!(err, "\r\x1b[2K{line}")
                } else {
                    writeln!(err, "{line}")
                };
            }
            if tty {
                let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            }
        });
        Progress { stop }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let f = latency_fields("x", &mut v, &[50, 99]);
        assert_eq!(f[0], ("x_p50_ms".to_string(), json!(50.0)));
        assert_eq!(f[1], ("x_p99_ms".to_string(), json!(99.0)));
        assert_eq!(f[2], ("x_max_ms".to_string(), json!(100.0)));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
        assert_eq!(
            percentile(&[Duration::from_millis(7)], 99.0),
            Duration::from_millis(7)
        );
    }
}
