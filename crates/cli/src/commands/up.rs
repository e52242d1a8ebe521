//! `aof up`: coordinator + one in-process runner + embedded SQLite.

use aof_config::Config;
use aof_coordinator::Coordinator;
use tokio_util::sync::CancellationToken;

use super::{coordinator::CoordinatorArgs, runner::RunnerOpts};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof up --listen 127.0.0.1:8765 --data-dir ./state")]
pub struct UpArgs {
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
    #[command(flatten)]
    pub runner: RunnerOpts,
}

impl UpArgs {
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        let mut f = self.coordinator.flags();
        f.extend(self.runner.flags());
        f
    }
}

pub async fn run(args: UpArgs, cfg: &Config) -> anyhow::Result<u8> {
    let ccfg = cfg.coordinator()?;
    let data_dir = cfg.data_dir();
    let (shutdown, hurry) = super::signals();
    let coord = Coordinator::bind(ccfg).await?;
    let addr = coord.local_addr()?;
    super::write_addr_file(args.coordinator.addr_file.as_deref(), addr)?;
    let url = format!("http://{addr}");
    // The in-process runner dials loopback even when the API listens on every interface:
    // with auth off, `0.0.0.0` is not a Host the API answers (DNS-rebinding check).
    let mut local = addr;
    if local.ip().is_unspecified() {
        local.set_ip(match local {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let mut runner_cfg = super::runner_config(cfg, Some(format!("http://{local}"))).await?;
    // With auth on, the in-process runner uses a key that exists only in this process,
    // so `aof up` needs no runner key and there is no default credential.
    if let Some(key) = coord.internal_runner_key() {
        runner_cfg.api_key = Some(aof_runner::ApiKey(key));
        runner_cfg.oauth = None;
    }
    println!("AOF is up: {url}  (data: {})", data_dir.display());
    println!("  try: aof run demo \"hello\" --follow --url {url}");
    // The runner drains first (it reports to the coordinator), then the server stops
    // within its bound. `/ready` fails from the first signal on. A second signal hands
    // the runner's runs back now and cuts what the server still has open.
    let stopping = coord.stopping();
    let server_shutdown = CancellationToken::new();
    let steps = tokio::spawn({
        let (shutdown, hurry, runner_done) =
            (shutdown.clone(), hurry.clone(), server_shutdown.clone());
        async move {
            shutdown.cancelled().await;
            stopping.announce();
            hurry.cancelled().await;
            // Not before: the runner hands its runs back through the server.
            runner_done.cancelled().await;
            stopping.hurry();
        }
    });
    let server = tokio::spawn(coord.serve(server_shutdown.clone()));
    let runner = tokio::spawn(aof_runner::run_draining(runner_cfg, shutdown, hurry));
    let runner_result = runner.await;
    server_shutdown.cancel();
    let server_result = server.await;
    steps.abort();
    server_result??;
    runner_result??;
    Ok(0)
}
