//! `aof matrix-bridge`: people talk to the agent fleet in Matrix rooms. A command in a
//! room starts a session whose events come back into a thread; replies in the thread
//! continue it; `!aof stop`, `!aof approve`, `!aof deny` act on it. Only Matrix users
//! on the allow-list may act, as the AOF role they are mapped to.
//!
//! Two loops share one [`bridge::Bridge`]: the Matrix sync (chat → AOF) and the AOF
//! feed (AOF → chat). Both resume from cursors kept in the bridge's own SQLite file.

pub mod aof;
pub mod bridge;
pub mod chat;
pub mod command;
pub mod config;
mod feed;
pub mod render;
pub mod state;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use config::BridgeConfig;

/// Runs the bridge until `stop`. A homeserver or coordinator that is down at start is
/// waited for (with backoff), not an error; a wrong token or setting is.
pub async fn run(cfg: BridgeConfig, stop: CancellationToken) -> anyhow::Result<()> {
    let state = state::State::open(&cfg.state_dir).await?;
    let aof = aof::Aof::new(&cfg.aof_url, cfg.aof_key.as_ref().map(|k| k.expose()))?;
    let mut backoff = bridge::Backoff::new();
    let chat = loop {
        match chat::Chat::connect(&cfg.homeserver, &cfg.user_id, cfg.access_token.expose()).await {
            Ok(c) => break c,
            Err(e) if is_auth_failure(&e) => return Err(e.context("logging in to Matrix")),
            Err(e) => {
                let wait = backoff.wait();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "homeserver not reachable; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    };
    tracing::info!(user = chat.me(), homeserver = %cfg.homeserver, aof = %cfg.aof_url, "matrix bridge up");
    let bridge = Arc::new(bridge::Bridge {
        cfg,
        state,
        aof,
        chat,
    });
    let feed = tokio::spawn(bridge.clone().feed_loop(stop.clone()));
    bridge.sync_loop(stop.clone()).await;
    stop.cancel();
    feed.await?;
    Ok(())
}

/// A refused token (or a token of another user) will not get better by waiting.
fn is_auth_failure(e: &anyhow::Error) -> bool {
    if e.to_string().contains("belongs to") {
        return true;
    }
    e.chain().any(|c| {
        c.downcast_ref::<matrix_sdk::HttpError>()
            .and_then(|h| h.as_client_api_error())
            .is_some_and(|api| matches!(api.status_code.as_u16(), 401 | 403))
    })
}
