//! `aof dashboard`: the web UI on its own port, forwarding API and SSE calls to the
//! coordinator named by `--url` / `AOF_URL` / `AGENT_ORCHESTRATOR_API_URL` (read at run
//! time, so one image serves any coordinator).

use std::path::PathBuf;

use aof_config::Config;

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
    let shutdown = super::shutdown_on_signals();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    super::write_addr_file(args.addr_file.as_deref(), addr)?;
    println!("AOF dashboard on http://{addr}/ui/  (coordinator: {upstream})");
    tracing::info!(%addr, %upstream, "dashboard listening");
    aof_dashboard::proxy::serve(listener, &upstream, shutdown).await?;
    Ok(0)
}
