//! One module per subcommand; resource nouns (`agents`, `sessions`, `runs`, `runners`,
//! `keys`, `config`) have one file per verb under `<noun>/`.

pub mod agents;
pub mod bench;
pub mod config;
pub mod coordinator;
pub mod health;
pub mod keys;
pub mod run;
pub mod runner;
pub mod runners;
pub mod runs;
pub mod sessions;
pub mod up;

use tokio_util::sync::CancellationToken;

/// A token cancelled on SIGINT or SIGTERM, so every server drains the same way.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
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
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}

/// Writes the bound address to `path` (tests and scripts bind port 0 and read it back).
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
