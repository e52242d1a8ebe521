//! `aof health [URL]`: a curl-free health probe for container HEALTHCHECKs.

use std::time::Duration;

use aof_config::Config;

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Example:\n  aof health http://127.0.0.1:8765 --ready")]
pub struct HealthArgs {
    /// Coordinator URL (default: AOF_URL / AGENT_ORCHESTRATOR_API_URL, else http://127.0.0.1:8765).
    pub url: Option<String>,
    /// Check /ready (store reachable) instead of /health.
    #[arg(long)]
    pub ready: bool,
}

impl HealthArgs {
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        self.url.iter().map(|u| ("api.url", u.clone())).collect()
    }
}

pub async fn run(args: HealthArgs, cfg: &Config) -> anyhow::Result<u8> {
    let base = cfg.api()?.url;
    let path = if args.ready { "ready" } else { "health" };
    let url = format!("{base}/{path}");
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
