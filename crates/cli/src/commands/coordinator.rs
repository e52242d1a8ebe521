//! `aof coordinator`: the API server alone.

use std::path::PathBuf;

use aof_config::Config;
use aof_coordinator::Coordinator;

/// Coordinator flags (also part of `aof up`). Every field is optional so an absent
/// flag never masks the file or the environment; `aof-config` does the merge.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CoordinatorArgs {
    /// Address to listen on, ADDRESS:PORT (port 0 picks a free port) [default: 127.0.0.1:8765].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// State directory; the database is `<dir>/observability.db` [default: .agent-orchestrator].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Agent blueprint directory [default: <data-dir>/agents].
    #[arg(long, value_name = "DIR")]
    pub agents_dir: Option<String>,
    /// SQLite durability: normal (survives process crashes) or full (also power loss).
    #[arg(long, value_name = "MODE")]
    pub sqlite_synchronous: Option<String>,
    /// With auth off, allow a non-loopback --listen (a warning is logged). Only behind
    /// something that authenticates; see SECURITY.md.
    #[arg(long)]
    pub insecure_listen: bool,
    /// Write the bound address here once listening.
    #[arg(long, value_name = "FILE")]
    pub addr_file: Option<PathBuf>,
}

impl CoordinatorArgs {
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        [
            ("coordinator.listen", &self.listen),
            ("data_dir", &self.data_dir),
            ("coordinator.agents_dir", &self.agents_dir),
            ("coordinator.sqlite_synchronous", &self.sqlite_synchronous),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .chain(
            self.insecure_listen
                .then(|| ("coordinator.insecure_listen", "true".to_string())),
        )
        .collect()
    }
}

pub async fn run(args: CoordinatorArgs, cfg: &Config) -> anyhow::Result<u8> {
    let ccfg = cfg.coordinator()?;
    let (shutdown, hurry) = super::signals();
    let coord = Coordinator::bind(ccfg).await?;
    // A second signal: stop waiting for open requests (they are cut, and named).
    let stopping = coord.stopping();
    tokio::spawn(async move {
        hurry.cancelled().await;
        stopping.hurry();
    });
    let addr = coord.local_addr()?;
    super::write_addr_file(args.addr_file.as_deref(), addr)?;
    println!("AOF coordinator listening on http://{addr}");
    coord.serve(shutdown).await?;
    Ok(0)
}
