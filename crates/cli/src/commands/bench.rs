//! `aof bench SCENARIO`: load an AOF-compatible coordinator over HTTP (our own,
//! in-process, unless `--url`). One JSON line to stdout, a table and progress to stderr.

use aof_bench::{Params, Scenario};

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum ScenarioArg {
    /// GET /health at concurrency C for D seconds (the client's HTTP ceiling).
    Noop,
    /// R runners claim, report and post E events while N runs are created.
    Lifecycle,
    /// Event POSTs at concurrency C for D seconds (one event each, or --batch N).
    Ingest,
    /// S SSE subscribers, M events: delivery lag, missing and duplicated events.
    Fanout,
    /// Lifecycle load for D seconds, sampling coordinator RSS and open fds.
    Soak,
}

impl From<ScenarioArg> for Scenario {
    fn from(s: ScenarioArg) -> Scenario {
        match s {
            ScenarioArg::Noop => Scenario::Noop,
            ScenarioArg::Lifecycle => Scenario::Lifecycle,
            ScenarioArg::Ingest => Scenario::Ingest,
            ScenarioArg::Fanout => Scenario::Fanout,
            ScenarioArg::Soak => Scenario::Soak,
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub scenario: ScenarioArg,
    /// Coordinator URL; default: start one in this process with a temp data dir.
    /// Repeat for several coordinators sharing one PostgreSQL (lifecycle only): runs
    /// are created on them in turn and each gets its own --runners.
    #[arg(long)]
    pub url: Vec<String>,
    /// PID of the coordinator behind --url, to sample its RSS, open fds and CPU time.
    /// With several --url, one --pid each, in the same order.
    #[arg(long, requires = "url")]
    pub pid: Vec<u32>,
    /// PID of PostgreSQL's postmaster: report the CPU time of it and all its processes
    /// (backends that exited during the run included) and CPU per run.
    #[arg(long)]
    pub pg_pid: Option<u32>,
    /// Lifecycle: one SSE subscriber per coordinator on the global feed checks that
    /// every event is delivered live once, in cursor order (default with several --url).
    #[arg(long)]
    pub sse_check: bool,
    /// Tiny parameters for CI (each scenario takes a second or two).
    #[arg(long)]
    pub smoke: bool,
    /// Concurrent clients (noop, ingest; default 32).
    #[arg(short = 'c', long)]
    pub concurrency: Option<usize>,
    /// Seconds of load (noop, ingest: 10; soak: 60).
    #[arg(short = 'd', long)]
    pub duration: Option<f64>,
    /// Runs to create (lifecycle; default 2000).
    #[arg(short = 'n', long)]
    pub runs: Option<u64>,
    /// Simulated runners (lifecycle, soak; default 8).
    #[arg(short = 'r', long)]
    pub runners: Option<usize>,
    /// Events per run (lifecycle, soak; default 5).
    #[arg(short = 'e', long)]
    pub events: Option<usize>,
    /// Concurrent run creators (lifecycle, soak; default 4).
    #[arg(long)]
    pub producers: Option<usize>,
    /// Runs created per second (lifecycle: as fast as possible by default; soak: 200).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Do not send x-aof-lease-token (like the AOF reference runners).
    #[arg(long)]
    pub no_lease_tokens: bool,
    /// Sessions to spread events over (ingest; default 8).
    #[arg(long)]
    pub sessions: Option<usize>,
    /// Events per request via POST /sessions/{id}/events/batch (ingest, 1 to 1000;
    /// default: single-event POSTs).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=aof_wire::api::MAX_BATCH_EVENTS as i64))]
    pub batch: Option<u16>,
    /// SSE subscribers (fanout; default 200).
    #[arg(long)]
    pub subscribers: Option<usize>,
    /// Events posted (fanout; default 100).
    #[arg(long)]
    pub messages: Option<usize>,
    /// Seconds to wait for completions / deliveries before giving up.
    #[arg(long)]
    pub timeout: Option<f64>,
}

/// Exit 0 when the scenario ran clean, 1 when it saw errors, losses or unfinished work.
pub async fn run(a: BenchArgs) -> anyhow::Result<u8> {
    let params = Params {
        urls: a.url,
        pids: a.pid,
        pg_pid: a.pg_pid,
        sse_check: a.sse_check,
        smoke: a.smoke,
        concurrency: a.concurrency,
        duration: a.duration,
        runs: a.runs,
        runners: a.runners,
        events: a.events,
        producers: a.producers,
        rate: a.rate.filter(|r| *r > 0.0),
        no_lease_tokens: a.no_lease_tokens,
        sessions: a.sessions,
        batch: a.batch.map(usize::from),
        subscribers: a.subscribers,
        messages: a.messages,
        timeout: a.timeout,
    };
    let report = aof_bench::run(a.scenario.into(), &params).await?;
    eprint!("{}", report.table());
    println!("{}", report.to_json());
    Ok(if report.ok { 0 } else { 1 })
}
