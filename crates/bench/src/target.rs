//! The coordinator under test: one at `--url`, or our own started in-process on a
//! loopback port with a temp data dir. Either way all traffic goes over HTTP.

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
    pub api: Api,
    pub durability: String,
    /// Process to sample for RSS and fds: ours in-process, `--pid` otherwise.
    pub pid: Option<u32>,
    pub in_process: bool,
    /// Cancels the in-process coordinator; owned here, cancelled by `close`.
    shutdown: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// Kept alive while the in-process coordinator runs; removed on drop.
    _tmp: Option<tempfile::TempDir>,
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
    /// Connects to `url`, or starts a coordinator in this process when `url` is `None`.
    pub async fn open(url: Option<&str>, pid: Option<u32>) -> anyhow::Result<Target> {
        let http = client()?;
        let shutdown = CancellationToken::new();
        let target = match url {
            Some(url) => Target {
                api: Api {
                    base: url.trim_end_matches('/').to_string(),
                    http,
                },
                durability: "unknown (external)".into(),
                pid,
                in_process: false,
                shutdown,
                server: None,
                _tmp: None,
            },
            None => {
                let tmp = tempfile::Builder::new().prefix("aof-bench-").tempdir()?;
                let (coord, durability) = bind_in_process(tmp.path()).await?;
                let addr = coord.local_addr()?;
                let server = tokio::spawn(coord.serve(shutdown.clone()));
                Target {
                    api: Api {
                        base: format!("http://{addr}"),
                        http,
                    },
                    durability: describe(durability),
                    pid: Some(std::process::id()),
                    in_process: true,
                    shutdown,
                    server: Some(server),
                    _tmp: Some(tmp),
                }
            }
        };
        let health = target
            .api
            .http
            .get(target.api.url("/health"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{} is not reachable: {e}", target.api.base))?;
        anyhow::ensure!(
            health.status().is_success(),
            "{}/health answered {}",
            target.api.base,
            health.status()
        );
        Ok(target)
    }

    /// Stops the in-process coordinator (if any) and removes its data dir.
    pub async fn close(self) {
        let Target {
            api,
            shutdown,
            server,
            _tmp,
            ..
        } = self;
        drop(api); // closes pooled keep-alive connections so the server can drain
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
