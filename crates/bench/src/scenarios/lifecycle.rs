//! `lifecycle`: R simulated runners (register, long-poll claim, started, E events,
//! completed) while producers create N runs. Measures throughput, dispatch latency
//! (`POST /runs` answered → a runner holds the run) and end-to-end latency (answered →
//! completion acknowledged), then checks every run's events (`integrity`). The load
//! engine here is shared with `soak`.
//!
//! With several coordinators (sharing one PostgreSQL) the producers create runs on them
//! in turn and each coordinator gets R runners of its own, polling only it. A run created
//! on one may be claimed through another: that is the shared queue working, and dispatch
//! is measured from creation to claim wherever the claim happened.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use aof_wire::{
    CompletedBody, Event, PollResponse, RegisterRequest, RegisterResponse, Run, RunnerIdBody,
};

use crate::{
    report::{latency_fields, round3, Errors, Progress},
    scenarios::{bench_tag, check, create_run, integrity, post_event},
    target::{Api, Target, REQUEST_TIMEOUT},
    Outcome, Params,
};

/// How much load to make and how.
#[derive(Debug, Clone)]
pub(crate) struct LoadSpec {
    /// Stop creating after this many runs…
    pub runs: Option<u64>,
    /// …or after this long.
    pub duration: Option<Duration>,
    /// Runs per second; `None` = as fast as `producers` concurrent creators go.
    pub rate: Option<f64>,
    pub producers: usize,
    pub runners: usize,
    pub events: usize,
    pub lease_tokens: bool,
    /// Give up waiting for completions this long after the start.
    pub timeout: Duration,
}

impl LoadSpec {
    pub(crate) fn parameters(&self) -> Value {
        json!({
            "runs": self.runs,
            "duration_s": self.duration.map(|d| d.as_secs_f64()),
            "rate": self.rate,
            "producers": self.producers,
            "runners": self.runners,
            "events_per_run": self.events,
            "lease_tokens": self.lease_tokens,
            "timeout_s": self.timeout.as_secs_f64(),
        })
    }
}

/// Instants of one run as the bench saw them.
#[derive(Default, Clone)]
struct Times {
    answered: Option<Instant>,
    claimed: Option<Instant>,
    completed: Option<Instant>,
    /// Its session, from the `POST /runs` answer.
    session_id: Option<String>,
    /// Indices into the coordinators: where it was created and where claimed.
    created_on: usize,
    claimed_on: Option<usize>,
}

struct Shared {
    /// Every coordinator; producers take turns over them.
    apis: Vec<Api>,
    spec: LoadSpec,
    /// By run id. Producers write `answered`, runners `claimed`/`completed`; a run a
    /// runner holds that no producer of ours answered for is someone else's.
    times: Mutex<HashMap<String, Times>>,
    created: AtomicU64,
    /// Completions of any run (ours or foreign); drives the progress line.
    completed: Arc<AtomicU64>,
    errors: Errors,
    /// Demanded by our runs and carried by our runners only.
    tag: String,
}

pub(crate) async fn run(t: &Target, p: &Params) -> anyhow::Result<Outcome> {
    let spec = LoadSpec {
        runs: Some(p.pick(p.runs, 2000, 20)),
        duration: None,
        rate: p.rate,
        producers: p.pick(p.producers, 4, 2).max(1),
        runners: p.pick(p.runners, 8, 2).max(1),
        events: p.pick(p.events, 5, 2),
        lease_tokens: !p.no_lease_tokens,
        timeout: p.secs(p.timeout, 300.0, 30.0),
    };
    let live = if p.sse_check || t.apis.len() > 1 {
        Some(integrity::Watchers::start(&t.apis).await?)
    } else {
        None
    };
    let load = drive(&t.apis, spec.clone()).await?;
    // The checks below are not the load: CPU is read before them.
    let cpu_end = t.cpu_reading();
    let checked = integrity::check(&t.apis, &load.sessions, spec.events, live).await;
    let ok = load.ok() && checked.ok();
    let runs = Some(load.completed);
    let mut results = load.fields(t.apis.len());
    results.extend(checked.fields());
    let mut parameters = spec.parameters();
    parameters["coordinators"] = json!(t.apis.len());
    parameters["sse_check"] = json!(checked.live());
    Ok(Outcome {
        parameters,
        results,
        ok,
        cpu_end: Some(cpu_end),
        runs,
    })
}

/// What a load run measured.
pub(crate) struct LoadResult {
    pub created: u64,
    pub completed: u64,
    pub foreign: u64,
    /// First `POST /runs` sent → last completion acknowledged.
    pub wall: Duration,
    pub dispatch: Vec<Duration>,
    pub e2e: Vec<Duration>,
    pub errors: Errors,
    /// Completed runs of ours: (index of the coordinator that created it, session id).
    pub sessions: Vec<(usize, String)>,
    /// Runs created on each coordinator, and claimed through each.
    pub created_on: Vec<u64>,
    pub claimed_on: Vec<u64>,
    /// Runs claimed through another coordinator than the one that created them.
    pub claimed_elsewhere: u64,
}

impl LoadResult {
    pub(crate) fn ok(&self) -> bool {
        self.errors.count() == 0 && self.completed == self.created && self.created > 0
    }

    /// The measured fields; per-coordinator counts when there are several.
    pub(crate) fn fields(mut self, coordinators: usize) -> Vec<(String, Value)> {
        let wall = self.wall.as_secs_f64().max(1e-9);
        let mut out = vec![
            ("runs_created".to_string(), json!(self.created)),
            ("runs_completed".into(), json!(self.completed)),
            (
                "runs_per_s".into(),
                json!(round3(self.completed as f64 / wall)),
            ),
            ("load_wall_s".into(), json!(round3(wall))),
        ];
        out.extend(latency_fields(
            "dispatch",
            &mut self.dispatch,
            &[50, 95, 99],
        ));
        out.extend(latency_fields("e2e", &mut self.e2e, &[50, 99]));
        if self.foreign > 0 {
            out.push(("foreign_runs_completed".into(), json!(self.foreign)));
        }
        if coordinators > 1 {
            out.push(("runs_created_each".into(), json!(self.created_on)));
            out.push(("runs_claimed_each".into(), json!(self.claimed_on)));
            out.push((
                "runs_claimed_elsewhere".into(),
                json!(self.claimed_elsewhere),
            ));
        }
        out.extend(self.errors.fields());
        out
    }
}

/// Registers R runners on each coordinator, produces runs per `spec` (in turn over the
/// coordinators), waits until every created run is completed (or `spec.timeout`), then
/// stops the runners.
pub(crate) async fn drive(apis: &[Api], spec: LoadSpec) -> anyhow::Result<LoadResult> {
    let sh = Arc::new(Shared {
        apis: apis.to_vec(),
        spec: spec.clone(),
        times: Mutex::new(HashMap::new()),
        created: AtomicU64::new(0),
        completed: Arc::new(AtomicU64::new(0)),
        errors: Errors::default(),
        tag: bench_tag(),
    });
    let stop = CancellationToken::new();
    let tag = sh.tag.clone();
    let mut runners = Vec::with_capacity(spec.runners * apis.len());
    for (k, api) in apis.iter().enumerate() {
        for i in 0..spec.runners {
            let reg = register(api, &format!("{}-{k}-{i}", &tag[..18]), &tag).await?;
            let task = runner(sh.clone(), k, reg, stop.clone());
            runners.push(tokio::spawn(task));
        }
    }
    let _progress = Progress::start("lifecycle", sh.completed.clone(), spec.runs, "runs");
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..spec.producers)
        .map(|_| tokio::spawn(producer(sh.clone(), next.clone(), start)))
        .collect();
    for p in producers {
        p.await?;
    }
    let give_up = start + spec.timeout;
    let created = sh.created.load(Ordering::Relaxed);
    loop {
        if ours_completed(&sh) >= created || Instant::now() >= give_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    for r in runners {
        r.await?;
    }
    let times = sh.times.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let (mut dispatch, mut e2e, mut sessions) = (Vec::new(), Vec::new(), Vec::new());
    let (mut completed, mut foreign, mut last) = (0, 0, start);
    let (mut created_on, mut claimed_on) = (vec![0; apis.len()], vec![0; apis.len()]);
    let mut claimed_elsewhere = 0;
    for t in times.values() {
        let Some(answered) = t.answered else {
            foreign += u64::from(t.completed.is_some());
            continue;
        };
        created_on[t.created_on] += 1;
        if let Some(claimed) = t.claimed {
            // A runner may hold the run before the creator has read the 201: that is 0.
            dispatch.push(claimed.saturating_duration_since(answered));
        }
        if let Some(k) = t.claimed_on {
            claimed_on[k] += 1;
            claimed_elsewhere += u64::from(k != t.created_on);
        }
        if let Some(done) = t.completed {
            completed += 1;
            e2e.push(done.saturating_duration_since(answered));
            last = last.max(done);
            if let Some(sid) = &t.session_id {
                sessions.push((t.created_on, sid.clone()));
            }
        }
    }
    drop(times);
    let sh = Arc::into_inner(sh).ok_or_else(|| anyhow::anyhow!("load tasks still running"))?;
    if completed < created {
        sh.errors.add(format!(
            "{} of {created} runs not completed within {:?}",
            created - completed,
            spec.timeout
        ));
    }
    Ok(LoadResult {
        created,
        completed,
        foreign,
        wall: last - start,
        dispatch,
        e2e,
        errors: sh.errors,
        sessions,
        created_on,
        claimed_on,
        claimed_elsewhere,
    })
}

fn ours_completed(sh: &Shared) -> u64 {
    sh.times.lock().map_or(0, |t| {
        t.values()
            .filter(|t| t.answered.is_some() && t.completed.is_some())
            .count() as u64
    })
}

async fn producer(sh: Arc<Shared>, next: Arc<AtomicU64>, start: Instant) {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if sh.spec.runs.is_some_and(|n| i >= n) {
            return;
        }
        let end = sh.spec.duration.map(|d| start + d);
        if let Some(rate) = sh.spec.rate {
            let at = start + Duration::from_secs_f64(i as f64 / rate);
            if end.is_some_and(|e| at >= e) {
                return;
            }
            tokio::time::sleep_until(at.into()).await;
        } else if end.is_some_and(|e| Instant::now() >= e) {
            return;
        }
        let k = (i % sh.apis.len() as u64) as usize;
        match create_run(&sh.apis[k], &sh.tag).await {
            Ok(resp) => {
                let now = Instant::now();
                if let Ok(mut t) = sh.times.lock() {
                    let t = t.entry(resp.run_id).or_default();
                    t.answered = Some(now);
                    t.session_id = Some(resp.session_id);
                    t.created_on = k;
                }
                sh.created.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => sh.errors.add(e),
        }
    }
}

async fn register(api: &Api, hostname: &str, tag: &str) -> anyhow::Result<RegisterResponse> {
    let req = RegisterRequest {
        hostname: hostname.to_string(),
        project_dir: "/aof-bench".into(),
        executor_profile: "bench".into(),
        // Runs without an agent demand an autonomous executor, as in the reference.
        executor: json!({"type": "autonomous"}).as_object().cloned(),
        instance_id: Some(format!("{tag}-{hostname}")),
        // The runs demand this tag, so only these runners take them.
        tags: Some(vec![tag.to_string()]),
        ..RegisterRequest::default()
    };
    let resp = api
        .http
        .post(api.url("/runner/register"))
        .timeout(REQUEST_TIMEOUT)
        .json(&req)
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "POST /runner/register answered {}: {}",
        resp.status(),
        resp.text().await.unwrap_or_default()
    );
    Ok(resp.json().await?)
}

/// One simulated runner of coordinator `k`: one run at a time, until `stop`.
async fn runner(sh: Arc<Shared>, k: usize, reg: RegisterResponse, stop: CancellationToken) {
    let api = &sh.apis[k];
    let poll_timeout = Duration::from_secs(reg.poll_timeout_seconds) + Duration::from_secs(10);
    let url = api.url("/runner/runs");
    loop {
        let poll = api
            .http
            .get(&url)
            .query(&[("runner_id", reg.runner_id.as_str())])
            .timeout(poll_timeout)
            .send();
        let resp = tokio::select! {
            r = poll => r,
            _ = stop.cancelled() => return,
        };
        let resp = match resp {
            Ok(r) if r.status().as_u16() == 204 => continue,
            Ok(r) if r.status().is_success() => r.json::<PollResponse>().await,
            other => {
                let msg = check(other, "GET /runner/runs").await.err();
                sh.errors.add(msg.unwrap_or_default());
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    _ = stop.cancelled() => return,
                }
            }
        };
        match resp {
            Ok(PollResponse::Run { run }) => {
                let claimed = Instant::now();
                if let Ok(mut t) = sh.times.lock() {
                    let t = t.entry(run.run_id.clone()).or_default();
                    t.claimed = Some(claimed);
                    t.claimed_on = Some(k);
                }
                match execute(&sh, api, &reg.runner_id, &run).await {
                    Ok(()) => {
                        let done = Instant::now();
                        if let Ok(mut t) = sh.times.lock() {
                            t.entry(run.run_id.clone()).or_default().completed = Some(done);
                        }
                        sh.completed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => sh.errors.add(e),
                }
            }
            Ok(PollResponse::Stop { .. }) => {}
            Ok(PollResponse::Deregistered { .. }) => {
                sh.errors
                    .add(format!("runner {} was deregistered", reg.runner_id));
                return;
            }
            Err(e) => sh.errors.add(format!("GET /runner/runs body: {e}")),
        }
    }
}

/// started → E events → completed, with the lease token unless told otherwise.
async fn execute(sh: &Shared, api: &Api, runner_id: &str, run: &Run) -> Result<(), String> {
    let token = run.lease_token.as_deref().filter(|_| sh.spec.lease_tokens);
    let report = |what: &str, body: Value| {
        let mut rb = api
            .http
            .post(api.url(&format!("/runner/runs/{}/{what}", run.run_id)))
            .timeout(REQUEST_TIMEOUT)
            .json(&body);
        if let Some(token) = token {
            rb = rb
                .header(aof_wire::LEASE_HEADER, token)
                .header(aof_wire::RUN_HEADER, &run.run_id);
        }
        rb.send()
    };
    let started = RunnerIdBody {
        runner_id: runner_id.to_string(),
    };
    check(
        report("started", json!(started)).await,
        "POST /runner/runs/{id}/started",
    )
    .await?;
    for n in 0..sh.spec.events {
        let ev = Event::message(&run.session_id, "assistant", &integrity::event_text(n));
        post_event(api, &ev, Some((&run.run_id, token))).await?;
    }
    let completed = CompletedBody {
        runner_id: runner_id.to_string(),
        status: "success".into(),
        session_status: None,
    };
    check(
        report("completed", json!(completed)).await,
        "POST /runner/runs/{id}/completed",
    )
    .await
}
