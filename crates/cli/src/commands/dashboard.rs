//! `aof dashboard`: the web UI on its own port, forwarding API and SSE calls to the
//! coordinator named by `--url` / `AOF_URL` / `AGENT_ORCHESTRATOR_API_URL` (read at run
//! time, so one image serves any coordinator).

use std::path::PathBuf;

use aof_config::Config;
use aof_coordinator::stopping::Stopping;

#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Example:\n  AGENT_ORCHESTRATOR_API_URL=http://coordinator:8765 aof dashboard --listen 0.0.0.0:8080"
)]
pub struct DashboardArgs {
    /// Address to listen on, ADDRESS:PORT (port 0 picks a free port) [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Coordinator URL (default: AOF_URL / AGENT_ORCHESTRATOR_API_URL, else http://127.0.0.1:8765).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Write the bound address here once listening.
    #[arg(long, value_name = "FILE")]
    pub addr_file: Option<PathBuf>,
}

impl DashboardArgs {
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        [("dashboard.listen", &self.listen), ("api.url", &self.url)]
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
            .collect()
    }
}

pub async fn run(args: DashboardArgs, cfg: &Config) -> anyhow::Result<u8> {
    let listen = cfg.dashboard_listen()?;
    let upstream = cfg.api()?.url;
    let bound = cfg.shutdown_timeout()?;
    // What to forward is the coordinator's route table (this binary's own coordinator).
    let forwarded = aof_coordinator::auth::policy::forwarded_paths();
    let app = aof_dashboard::proxy::app(&upstream, &forwarded)?;
    let (shutdown, hurry) = super::signals();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    super::write_addr_file(args.addr_file.as_deref(), addr)?;
    println!("AOF dashboard on http://{addr}/ui/  (coordinator: {upstream})");
    tracing::info!(%addr, %upstream, "dashboard listening");
    if !listen.ip().is_loopback() {
        tokio::spawn(warn_if_open(upstream.clone()));
    }
    // Same stop as the coordinator's (`coordinator.shutdown_timeout`): forwarded event
    // streams end between two events with a `retry:` frame, and the page reconnects.
    let stopping = Stopping::new();
    tokio::spawn({
        let stopping = stopping.clone();
        async move {
            shutdown.cancelled().await;
            stopping.drain();
            hurry.cancelled().await;
            stopping.hurry();
        }
    });
    let served = aof_coordinator::stopping::serve(listener, app, &stopping, bound).await?;
    if served.cut.is_empty() {
        tracing::info!("dashboard stopped");
    } else {
        tracing::warn!(
            shutdown_timeout_s = bound.as_secs_f64(),
            "dashboard stopped at the shutdown bound (coordinator.shutdown_timeout); cut: {}",
            served.cut.join(", ")
        );
    }
    Ok(0)
}

/// The proxy adds no credential, but on a public address it exposes the coordinator's
/// API to whoever reaches it: say so when that API asks for no credential at all.
async fn warn_if_open(upstream: String) {
    let client = reqwest::Client::new();
    let Ok(resp) = client.get(format!("{upstream}/auth/me")).send().await else {
        tracing::warn!(%upstream, "coordinator not reachable yet; pages will show errors until it is");
        return;
    };
    let open = resp
        .json::<serde_json::Value>()
        .await
        .is_ok_and(|v| v["auth_enabled"] == serde_json::Value::Bool(false));
    if open {
        tracing::warn!(
            %upstream,
            "the coordinator has auth off: anyone who reaches this dashboard can use its API; \
             turn auth on (SECURITY.md) before exposing it"
        );
    }
}
