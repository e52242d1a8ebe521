//! One module per subcommand; resource nouns (`agents`, `sessions`, `runs`, `runners`,
//! `approvals`, `keys`, `config`) have one file per verb under `<noun>/`.

//! The coordinator's and the runner's commands are only in builds with that feature
//! (`server_side`, Cargo.toml); the rest talk HTTP and are always in.

pub mod agents;
pub mod approvals;
pub mod audit;
#[cfg(feature = "coordinator")]
pub mod backup;
#[cfg(feature = "coordinator")]
pub mod bench;
pub mod config;
#[cfg(feature = "coordinator")]
pub mod coordinator;
#[cfg(feature = "coordinator")]
pub mod dashboard;
#[cfg(feature = "coordinator")]
pub mod doctor;
pub mod health;
#[cfg(feature = "coordinator")]
pub mod import;
#[cfg(feature = "coordinator")]
pub mod keys;
#[cfg(feature = "matrix")]
pub mod matrix_bridge;
pub mod run;
#[cfg(feature = "runner")]
pub mod runner;
pub mod runners;
pub mod runs;
pub mod sessions;
#[cfg(all(feature = "coordinator", feature = "runner"))]
pub mod up;

use tokio_util::sync::CancellationToken;

/// The runner's settings, read off the async threads (a `PROFILE` is a file to read);
/// `url` overrides `api.url` as in `Config::runner`.
#[cfg(feature = "runner")]
pub async fn runner_config(
    cfg: &aof_config::Config,
    url: Option<String>,
) -> anyhow::Result<aof_runner::RunnerConfig> {
    let cfg = cfg.clone();
    Ok(tokio::task::spawn_blocking(move || cfg.runner(url)).await??)
}

/// `(shutdown, hurry)`: the first SIGINT/SIGTERM cancels `shutdown` (drain), a second
/// one `hurry` (stop waiting for the drain).
pub fn signals() -> (CancellationToken, CancellationToken) {
    let token = CancellationToken::new();
    let hurry = CancellationToken::new();
    let (t, h) = (token.clone(), hurry.clone());
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                    t.cancel();
                    return;
                }
            };
        for (n, token) in [(1, t), (2, h)] {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            match n {
                1 => tracing::info!("shutdown requested"),
                _ => tracing::info!("second signal: not waiting for the drain"),
            }
            token.cancel();
        }
    });
    (token, hurry)
}

/// Writes the bound address to `path` (tests and scripts bind port 0 and read it back).
#[cfg(feature = "coordinator")]
pub fn write_addr_file(
    path: Option<&std::path::Path>,
    addr: std::net::SocketAddr,
) -> anyhow::Result<()> {
    if let Some(p) = path {
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, addr.to_string())?;
        std::fs::rename(&tmp, p)?;
    }
    Ok(())
}

/// `aof runs stop` and `aof sessions stop`: POST `{path}/{id}/stop`, print the outcome.
pub async fn stop_resource(
    api: &crate::client::Api,
    json: bool,
    path: &str,
    label: &str,
    id: &str,
) -> anyhow::Result<u8> {
    let body = api
        .post(
            &format!("{path}/{}/stop", crate::client::seg(id)),
            &serde_json::json!({}),
        )
        .await?;
    if json {
        crate::table::print_json(&body);
    } else {
        let msg = body["message"]
            .as_str()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        eprintln!(
            "{label} {id}: {}{msg}",
            body["status"].as_str().unwrap_or("stop requested")
        );
    }
    Ok(0)
}
