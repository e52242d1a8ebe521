//! aof-bench: load scenarios that drive any AOF-compatible coordinator over loopback
//! HTTP (`aof bench`). Each scenario returns one [`Report`]; printing is the caller's.
//!
//! The bench is only a client: it never reaches into the coordinator's store or state,
//! even when it starts the coordinator in-process, so numbers hold for external ones too.

pub mod proc;
pub mod report;
mod scenarios;
mod target;

use std::time::{Duration, Instant};

use serde_json::Value;

pub use report::Report;
pub use target::{Api, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `GET /health` at concurrency C: the HTTP ceiling of this client.
    Noop,
    /// Runners claim, report and post events while a producer creates runs.
    Lifecycle,
    /// Event POSTs (single, or batches of N) into a few sessions at concurrency C.
    Ingest,
    /// S SSE subscribers on one session, M events posted: lag, loss, duplicates.
    Fanout,
    /// Lifecycle load for T seconds while sampling coordinator RSS and fds.
    Soak,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Noop => "noop",
            Scenario::Lifecycle => "lifecycle",
            Scenario::Ingest => "ingest",
            Scenario::Fanout => "fanout",
            Scenario::Soak => "soak",
        }
    }
}

/// Knobs from the command line; `None` means the scenario's default (or its `--smoke`
/// value when `smoke` is set).
#[derive(Debug, Clone, Default)]
pub struct Params {
    /// Coordinator base URL; `None` starts one in-process.
    pub url: Option<String>,
    /// PID of an external coordinator, for RSS and fd sampling.
    pub pid: Option<u32>,
    /// Tiny parameters for CI: each scenario finishes in about a second or two.
    pub smoke: bool,
    /// Concurrent clients (noop, ingest).
    pub concurrency: Option<usize>,
    /// Seconds of load (noop, ingest, soak).
    pub duration: Option<f64>,
    /// Runs to create (lifecycle).
    pub runs: Option<u64>,
    /// Simulated runners (lifecycle, soak).
    pub runners: Option<usize>,
    /// Events each runner posts per run (lifecycle, soak).
    pub events: Option<usize>,
    /// Concurrent run creators (lifecycle, soak).
    pub producers: Option<usize>,
    /// Runs created per second; `None` = as fast as the producers go.
    pub rate: Option<f64>,
    /// Omit `x-aof-lease-token` like the AOF reference runners.
    pub no_lease_tokens: bool,
    /// Sessions to spread events over (ingest).
    pub sessions: Option<usize>,
    /// Events per request via `POST /sessions/{id}/events/batch` (ingest); `None`:
    /// single-event posts.
    pub batch: Option<usize>,
    /// SSE subscribers (fanout).
    pub subscribers: Option<usize>,
    /// Events posted (fanout).
    pub messages: Option<usize>,
    /// Give up waiting for completions after this many seconds (lifecycle, soak).
    pub timeout: Option<f64>,
}

impl Params {
    /// `v`, else `smoke` under `--smoke`, else `default`.
    pub(crate) fn pick<T: Copy>(&self, v: Option<T>, default: T, smoke: T) -> T {
        v.unwrap_or(if self.smoke { smoke } else { default })
    }

    pub(crate) fn secs(&self, v: Option<f64>, default: f64, smoke: f64) -> Duration {
        Duration::from_secs_f64(self.pick(v, default, smoke).max(0.001))
    }
}

/// What a scenario measured, before the common fields are added.
pub(crate) struct Outcome {
    pub parameters: Value,
    pub results: Vec<(String, Value)>,
    pub ok: bool,
}

/// Runs one scenario against `params.url` (or an in-process coordinator).
pub async fn run(scenario: Scenario, params: &Params) -> anyhow::Result<Report> {
    proc::raise_nofile();
    let target = Target::open(params.url.as_deref(), params.pid).await?;
    let cpu0 = proc::self_cpu();
    // In-process, the coordinator's CPU is already in `bench_cpu_s`.
    let coordinator_cpu0 = target
        .pid
        .filter(|_| !target.in_process)
        .and_then(proc::cpu_of);
    let t0 = Instant::now();
    let outcome = match scenario {
        Scenario::Noop => scenarios::noop::run(&target, params).await,
        Scenario::Lifecycle => scenarios::lifecycle::run(&target, params).await,
        Scenario::Ingest => scenarios::ingest::run(&target, params).await,
        Scenario::Fanout => scenarios::fanout::run(&target, params).await,
        Scenario::Soak => scenarios::soak::run(&target, params).await,
    };
    let wall_s = t0.elapsed().as_secs_f64();
    let bench_cpu_s = (proc::self_cpu().saturating_sub(cpu0)).as_secs_f64();
    let coordinator_peak_rss_kb = target.pid.and_then(proc::peak_rss_kb);
    let coordinator_cpu_s = coordinator_cpu0
        .zip(target.pid.and_then(proc::cpu_of))
        .map(|(a, b)| b.saturating_sub(a).as_secs_f64());
    let durability = target.durability.clone();
    let in_process = target.in_process;
    target.close().await;
    let outcome = outcome?;
    Ok(Report {
        scenario: scenario.name(),
        parameters: outcome.parameters,
        durability,
        results: outcome.results,
        coordinator_peak_rss_kb,
        bench_cpu_s,
        coordinator_cpu_s,
        wall_s,
        in_process,
        ok: outcome.ok,
    })
}
