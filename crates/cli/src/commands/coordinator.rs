//! `aof coordinator`: the API server alone.

use std::{net::SocketAddr, path::PathBuf};

use aof_coordinator::{Coordinator, CoordinatorConfig};

#[derive(clap::Args, Debug, Clone)]
pub struct CoordinatorArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8765")]
    pub listen: SocketAddr,
    /// Data directory; the database is `<dir>/observability.db`
    /// (default: AGENT_ORCHESTRATOR_DB_PATH, else ./.agent-orchestrator).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// SQLite durability: normal (survives process crashes) or full (also power loss).
    #[arg(long)]
    pub sqlite_synchronous: Option<String>,
    /// Write the bound address here once listening.
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
}

impl CoordinatorArgs {
    pub fn config(&self) -> anyhow::Result<CoordinatorConfig> {
        let mut cfg = CoordinatorConfig::from_env().map_err(anyhow::Error::msg)?;
        cfg.listen = self.listen;
        if let Some(dir) = &self.data_dir {
            cfg.db_path = dir.join("observability.db");
        }
        if let Some(s) = &self.sqlite_synchronous {
            cfg.durability = s.parse().map_err(anyhow::Error::msg)?;
        }
        Ok(cfg)
    }
}

pub async fn run(args: CoordinatorArgs) -> anyhow::Result<u8> {
    let cfg = args.config()?;
    let shutdown = super::shutdown_on_signals();
    let coord = Coordinator::bind(cfg).await?;
    let addr = coord.local_addr()?;
    super::write_addr_file(args.addr_file.as_deref(), addr)?;
    println!("AOF coordinator listening on http://{addr}");
    coord.serve(shutdown).await?;
    Ok(0)
}
