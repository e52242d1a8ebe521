//! The coordinators under test: those at `--url` (several when repeated, e.g. sharing one
//! PostgreSQL), or our own started in-process on a loopback port with a temp data dir.
//! Either way all traffic goes over HTTP.

use std::{path::Path, time::Duration};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use aof_coordinator::{Coordinator, CoordinatorConfig};
use aof_store_sqlite::Durability;

/// Timeout for every request except long-polls and SSE streams.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Cheap to clone: the HTTP client and the base URL, for spawned tasks.
#[derive(Clone)]
pub struct Api {
    /// `http://host:port` without a trailing slash.
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

pub struct Target {
    /// The first coordinator: the one single-coordinator scenarios load.
    pub api: Api,
    /// Every coordinator, `api` first; more than one only with repeated `--url`.
    pub apis: Vec<Api>,
    pub durability: String,
    /// Process to sample for RSS and fds: ours in-process, the first `--pid` otherwise.
    pub pid: Option<u32>,
    /// The `--pid` of each of `apis`, by position (ours in-process).
    pub pids: Vec<Option<u32>>,
    /// PostgreSQL's postmaster (`--pg-pid`), whose process tree's CPU time is measured.
    pub pg_pid: Option<u32>,
    pub in_process: bool,
    /// Cancels the in-process coordinator; owned here, cancelled by `close`.
    shutdown: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// Kept alive while the in-process coordinator runs; removed on drop.
    _tmp: Option<tempfile::TempDir>,
}

/// Pairs each `--url` with the `--pid` at the same position. Either no `--pid` at all or
/// one per `--url`: a half-paired list would silently measure the wrong processes. The
/// same coordinator twice would double its runners and read as two, so it is refused.
pub fn pair(urls: &[String], pids: &[u32]) -> anyhow::Result<Vec<(String, Option<u32>)>> {
    anyhow::ensure!(
        pids.is_empty() || pids.len() == urls.len(),
        "{} --pid for {} --url: give one --pid per --url, in the same order, or none",
        pids.len(),
        urls.len()
    );
    let mut out: Vec<(String, Option<u32>)> = Vec::with_capacity(urls.len());
    for (i, url) in urls.iter().enumerate() {
        let url = url.trim_end_matches('/').to_string();
        anyhow::ensure!(
            !out.iter().any(|(u, _)| *u == url),
            "--url {url} is given twice"
        );
        out.push((url, pids.get(i).copied()));
    }
    let mut seen: Vec<u32> = out.iter().filter_map(|(_, p)| *p).collect();
    seen.sort_unstable();
    anyhow::ensure!(
        seen.windows(2).all(|w| w[0] != w[1]),
        "the same --pid is given for two --url"
    );
    Ok(out)
}

fn client() -> anyhow::Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    if let Ok(key) = std::env::var("AOF_API_KEY") {
        if !key.is_empty() {
            let mut v = HeaderValue::from_str(&format!("Bearer {key}"))?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .connect_timeout(Duration::from_secs(5))
        .build()?)
}

fn describe(d: Durability) -> String {
    match d {
        Durability::Normal => "sqlite synchronous=NORMAL (WAL)".into(),
        Durability::Full => "sqlite synchronous=FULL (WAL)".into(),
    }
}

impl Target {
    /// Connects to each of `urls` (paired with `pids` by position, see [`pair`]), or
    /// starts a coordinator in this process when `urls` is empty.
    pub async fn open(
        urls: &[String],
        pids: &[u32],
        pg_pid: Option<u32>,
    ) -> anyhow::Result<Target> {
        let http = client()?;
        let shutdown = CancellationToken::new();
        let target = if urls.is_empty() {
            anyhow::ensure!(pids.is_empty(), "--pid needs --url");
            let tmp = tempfile::Builder::new().prefix("aof-bench-").tempdir()?;
            let (coord, durability) = bind_in_process(tmp.path()).await?;
            let addr = coord.local_addr()?;
            let server = tokio::spawn(coord.serve(shutdown.clone()));
            let api = Api {
                base: format!("http://{addr}"),
                http,
            };
            let pid = Some(std::process::id());
            Target {
                apis: vec![api.clone()],
                api,
                durability: describe(durability),
                pid,
                pids: vec![pid],
                pg_pid,
                in_process: true,
                shutdown,
                server: Some(server),
                _tmp: Some(tmp),
            }
        } else {
            let paired = pair(urls, pids)?;
            let apis: Vec<Api> = paired
                .iter()
                .map(|(base, _)| Api {
                    base: base.clone(),
                    http: http.clone(),
                })
                .collect();
            let pids: Vec<Option<u32>> = paired.iter().map(|(_, p)| *p).collect();
            Target {
                api: apis[0].clone(),
                apis,
                durability: "unknown (external)".into(),
                pid: pids[0],
                pids,
                pg_pid,
                in_process: false,
                shutdown,
                server: None,
                _tmp: None,
            }
        };
        for api in &target.apis {
            let health = api
                .http
                .get(api.url("/health"))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{} is not reachable: {e}", api.base))?;
            anyhow::ensure!(
                health.status().is_success(),
                "{}/health answered {}",
                api.base,
                health.status()
            );
        }
        Ok(target)
    }

    /// Stops the in-process coordinator (if any) and removes its data dir.
    pub async fn close(self) {
        let Target {
            api,
            apis,
            shutdown,
            server,
            _tmp,
            ..
        } = self;
        drop((api, apis)); // closes pooled keep-alive connections so the server can drain
        shutdown.cancel();
        if let Some(server) = server {
            match tokio::time::timeout(Duration::from_secs(5), server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => eprintln!("aof bench: coordinator ended with: {e:#}"),
                Ok(Err(e)) => eprintln!("aof bench: coordinator task failed: {e}"),
                Err(_) => eprintln!("aof bench: coordinator did not drain within 5 s"),
            }
        }
    }
}

/// CPU clocks read at one instant: this process, each external coordinator (`--pid`)
/// and PostgreSQL's process tree (`--pg-pid`).
#[derive(Debug, Clone)]
pub struct CpuReading {
    at: std::time::Instant,
    bench: Duration,
    /// `None` in-process (the coordinator's CPU is ours) or without `--pid`.
    coordinators: Vec<Option<Duration>>,
    pg: Option<Duration>,
}

/// CPU seconds between two [`CpuReading`]s.
pub(crate) struct CpuSpent {
    /// Wall seconds between the readings.
    pub wall: f64,
    pub bench: f64,
    pub coordinators: Vec<Option<f64>>,
    pub pg: Option<f64>,
}

impl CpuReading {
    pub(crate) fn since(&self, before: &CpuReading) -> CpuSpent {
        let delta = |a: Option<Duration>, b: Option<Duration>| {
            a.zip(b).map(|(a, b)| a.saturating_sub(b).as_secs_f64())
        };
        CpuSpent {
            wall: self.at.saturating_duration_since(before.at).as_secs_f64(),
            bench: self.bench.saturating_sub(before.bench).as_secs_f64(),
            coordinators: (self.coordinators.iter())
                .zip(&before.coordinators)
                .map(|(a, b)| delta(*a, *b))
                .collect(),
            pg: delta(self.pg, before.pg),
        }
    }
}

impl Target {
    pub fn cpu_reading(&self) -> CpuReading {
        CpuReading {
            at: std::time::Instant::now(),
            bench: crate::proc::self_cpu(),
            coordinators: (self.pids.iter())
                .map(|p| p.filter(|_| !self.in_process).and_then(crate::proc::cpu_of))
                .collect(),
            pg: self.pg_pid.and_then(crate::proc::tree_cpu),
        }
    }
}

/// Our own coordinator: defaults, a temp data dir, port 0, and `AOF_SQLITE_SYNCHRONOUS`
/// (the one setting a benchmark must be able to vary). Other tuning variables are not read
/// here, so in-process numbers are always for the documented defaults.
async fn bind_in_process(dir: &Path) -> anyhow::Result<(Coordinator, Durability)> {
    let mut cfg = CoordinatorConfig {
        listen: "127.0.0.1:0".parse()?,
        db_path: dir.join("observability.db"),
        agents_dir: dir.join("agents"),
        ..CoordinatorConfig::default()
    };
    if let Ok(v) = std::env::var("AOF_SQLITE_SYNCHRONOUS") {
        cfg.durability = v
            .parse()
            .map_err(|e: String| anyhow::anyhow!("AOF_SQLITE_SYNCHRONOUS: {e}"))?;
    }
    let durability = cfg.durability;
    Ok((Coordinator::bind(cfg).await?, durability))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(u: &[&str]) -> Vec<String> {
        u.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pids_pair_with_urls_by_position() {
        let u = urls(&["http://127.0.0.1:4001/", "http://127.0.0.1:4002"]);
        assert_eq!(
            pair(&u, &[71, 72]).unwrap(),
            vec![
                ("http://127.0.0.1:4001".to_string(), Some(71)),
                ("http://127.0.0.1:4002".to_string(), Some(72)),
            ]
        );
        assert_eq!(
            pair(&u, &[]).unwrap(),
            vec![
                ("http://127.0.0.1:4001".to_string(), None),
                ("http://127.0.0.1:4002".to_string(), None),
            ]
        );
    }

    #[test]
    fn half_paired_or_repeated_coordinators_are_refused() {
        let u = urls(&["http://127.0.0.1:4001", "http://127.0.0.1:4002"]);
        let e = pair(&u, &[71]).unwrap_err().to_string();
        assert!(e.contains("1 --pid for 2 --url"), "{e}");
        assert!(pair(&u, &[71, 72, 73]).is_err());
        let e = pair(&u, &[71, 71]).unwrap_err().to_string();
        assert!(e.contains("same --pid"), "{e}");
        // A trailing slash does not make the same coordinator a second one.
        let e = pair(&urls(&["http://a:1", "http://a:1/"]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("given twice"), "{e}");
    }
}
