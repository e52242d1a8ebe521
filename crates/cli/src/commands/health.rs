//! `aof health [URL]`: a curl-free health probe for container HEALTHCHECKs.

use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct HealthArgs {
    /// Coordinator URL (default: AGENT_ORCHESTRATOR_API_URL, else http://127.0.0.1:8765).
    pub url: Option<String>,
    /// Check /ready (store reachable) instead of /health.
    #[arg(long)]
    pub ready: bool,
}

pub async fn run(args: HealthArgs) -> anyhow::Result<u8> {
    let base = args.url.unwrap_or_else(super::env_url);
    let path = if args.ready { "ready" } else { "health" };
    let url = format!("{}/{path}", base.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => {
            println!("ok: {url}");
            Ok(0)
        }
        Ok(r) => {
            eprintln!("aof: {url} answered {}", r.status());
            Ok(1)
        }
        Err(e) => {
            eprintln!("aof: {url} unreachable: {e}");
            Ok(1)
        }
    }
}
