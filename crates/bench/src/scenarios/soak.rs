//! `soak`: lifecycle load for T seconds while sampling the coordinator's RSS and open
//! fds once a second (`/proc/PID`; PID is ours in-process, else `--pid`). Growth between
//! start and end under steady load is what to look at.

use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::{
    proc,
    scenarios::lifecycle::{drive, LoadSpec},
    target::Target,
    Outcome, Params,
};

/// Start, peak and end of one sampled quantity.
#[derive(Default)]
struct Series {
    start: Option<u64>,
    peak: Option<u64>,
    end: Option<u64>,
}

impl Series {
    fn push(&mut self, v: Option<u64>) {
        let Some(v) = v else { return };
        self.start.get_or_insert(v);
        self.peak = Some(self.peak.map_or(v, |p| p.max(v)));
        self.end = Some(v);
    }

    fn fields(&self, name: &str) -> Vec<(String, Value)> {
        vec![
            (format!("{name}_start"), json!(self.start)),
            (format!("{name}_peak"), json!(self.peak)),
            (format!("{name}_end"), json!(self.end)),
        ]
    }
}

pub(crate) async fn run(t: &Target, p: &Params) -> anyhow::Result<Outcome> {
    let spec = LoadSpec {
        runs: p.runs,
        duration: Some(p.secs(p.duration, 60.0, 2.0)),
        rate: Some(p.pick(p.rate, 200.0, 20.0)),
        producers: p.pick(p.producers, 4, 2).max(1),
        runners: p.pick(p.runners, 8, 2).max(1),
        events: p.pick(p.events, 5, 2),
        lease_tokens: !p.no_lease_tokens,
        timeout: p.secs(p.timeout, 600.0, 30.0),
    };
    let stop = CancellationToken::new();
    let sampler = tokio::spawn(sample(t.pid, stop.clone()));
    let load = drive(std::slice::from_ref(&t.api), spec.clone()).await;
    stop.cancel();
    let (rss, fds, samples) = sampler.await?;
    let load = load?;
    let ok = load.ok();
    let runs = Some(load.completed);
    let mut results = load.fields(1);
    results.push(("samples".into(), json!(samples)));
    results.extend(rss.fields("rss_kb"));
    results.extend(fds.fields("open_fds"));
    if t.pid.is_none() {
        results.push((
            "sampling".into(),
            json!("none: external coordinator without --pid"),
        ));
    }
    Ok(Outcome {
        parameters: spec.parameters(),
        results,
        ok,
        runs,
        ..Outcome::default()
    })
}

/// Samples RSS and fds every second (and once more at the end) until `stop`.
async fn sample(pid: Option<u32>, stop: CancellationToken) -> (Series, Series, u64) {
    let (mut rss, mut fds, mut n) = (Series::default(), Series::default(), 0);
    let Some(pid) = pid else {
        return (rss, fds, n);
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.cancelled() => true,
        };
        rss.push(proc::rss_kb(pid));
        fds.push(proc::fd_count(pid));
        n += 1;
        if last {
            return (rss, fds, n);
        }
    }
}
