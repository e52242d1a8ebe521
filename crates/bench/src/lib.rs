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
pub use target::{Api, CpuReading, Target};

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
    /// Coordinator base URLs; none starts one in-process. Several only for lifecycle:
    /// coordinators sharing one database (PostgreSQL), each with its own runners.
    pub urls: Vec<String>,
    /// PIDs of the external coordinators, paired with `urls` by position (all or none),
    /// for RSS, fd and CPU sampling.
    pub pids: Vec<u32>,
    /// PID of PostgreSQL's postmaster: its process tree's CPU time during the run.
    pub pg_pid: Option<u32>,
    /// Lifecycle: one SSE subscriber per coordinator on the global feed checks live
    /// delivery (on by default with several coordinators).
    pub sse_check: bool,
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
#[derive(Default)]
pub(crate) struct Outcome {
    pub parameters: Value,
    pub results: Vec<(String, Value)>,
    pub ok: bool,
    /// CPU clocks read when the load ended, if the scenario did more (checks) after it
    /// that the CPU figures should not include; `None`: read when the scenario returns.
    pub cpu_end: Option<CpuReading>,
    /// Runs completed, when CPU per run means something (lifecycle, soak).
    pub runs: Option<u64>,
}

/// Runs one scenario against `params.urls` (or an in-process coordinator).
pub async fn run(scenario: Scenario, params: &Params) -> anyhow::Result<Report> {
    anyhow::ensure!(
        params.urls.len() <= 1 || scenario == Scenario::Lifecycle,
        "only lifecycle loads several coordinators (--url given {} times)",
        params.urls.len()
    );
    proc::raise_nofile();
    let target = Target::open(&params.urls, &params.pids, params.pg_pid).await?;
    let cpu0 = target.cpu_reading();
    let t0 = Instant::now();
    let outcome = match scenario {
        Scenario::Noop => scenarios::noop::run(&target, params).await,
        Scenario::Lifecycle => scenarios::lifecycle::run(&target, params).await,
        Scenario::Ingest => scenarios::ingest::run(&target, params).await,
        Scenario::Fanout => scenarios::fanout::run(&target, params).await,
        Scenario::Soak => scenarios::soak::run(&target, params).await,
    };
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu1 = match &outcome {
        Ok(Outcome {
            cpu_end: Some(c), ..
        }) => c.clone(),
        _ => target.cpu_reading(),
    };
    let cpu = cpu1.since(&cpu0);
    let peak_rss: Vec<Option<u64>> = target
        .pids
        .iter()
        .map(|p| p.and_then(proc::peak_rss_kb))
        .collect();
    let durability = target.durability.clone();
    let in_process = target.in_process;
    target.close().await;
    let outcome = outcome?;
    Ok(Report {
        scenario: scenario.name(),
        parameters: outcome.parameters,
        durability,
        results: outcome.results,
        coordinator_peak_rss_kb: peak_rss.iter().flatten().max().copied(),
        coordinator_peak_rss_kb_each: peak_rss,
        bench_cpu_s: cpu.bench,
        coordinator_cpu_s: cpu.coordinators.iter().copied().sum(),
        coordinator_cpu_s_each: cpu.coordinators,
        pg_cpu_s: cpu.pg,
        cpu_wall_s: cpu.wall,
        runs: outcome.runs,
        wall_s,
        in_process,
        ok: outcome.ok,
    })
}
