//! `aof up`: coordinator + one in-process runner + embedded SQLite.

use std::path::PathBuf;

use aof_coordinator::Coordinator;

use super::{coordinator::CoordinatorArgs, runner::RunnerOpts};

#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
    #[command(flatten)]
    pub runner: RunnerOpts,
}

pub async fn run(args: UpArgs) -> anyhow::Result<u8> {
    let mut cargs = args.coordinator.clone();
    let data_dir = cargs
        .data_dir
        .get_or_insert_with(|| PathBuf::from(".agent-orchestrator"))
        .clone();
    let cfg = cargs.config()?;
    let shutdown = super::shutdown_on_signals();
    let coord = Coordinator::bind(cfg).await?;
    let addr = coord.local_addr()?;
    super::write_addr_file(cargs.addr_file.as_deref(), addr)?;
    let url = format!("http://{addr}");
    let runner_cfg = args.runner.config(url.clone(), &data_dir)?;
    println!("AOF is up: {url}  (data: {})", data_dir.display());
    println!("  try: aof run demo \"hello\" --follow --url {url}");
    let server = tokio::spawn(coord.serve(shutdown.clone()));
    let runner_shutdown = shutdown.child_token();
    let runner = tokio::spawn(aof_runner::run(runner_cfg, runner_shutdown));
    // The runner drains first (it reports to the coordinator), then the server stops.
    let runner_result = runner.await?;
    shutdown.cancel();
    server.await??;
    runner_result?;
    Ok(0)
}
