//! `aof run AGENT PROMPT [--follow]`: start a session; optionally stream it to the end.
//!
//! Following reconnects with `Last-Event-ID` if the coordinator goes away (a restart
//! loses nothing), and exits 0 only if the session finished well.

use std::time::Duration;

use aof_wire::{ErrorBody, RunCreateResponse};

use crate::sse_client::{self, Frame};

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Agent name (an unknown agent runs on the runner's default executor).
    pub agent: String,
    /// The prompt.
    pub prompt: String,
    /// Stream the session's events until it ends.
    #[arg(long, short)]
    pub follow: bool,
    /// Coordinator URL (default: AGENT_ORCHESTRATOR_API_URL, else http://127.0.0.1:8765).
    #[arg(long)]
    pub url: Option<String>,
    /// Project directory for the session.
    #[arg(long)]
    pub project_dir: Option<String>,
    /// Give up following after this many seconds (default: never).
    #[arg(long)]
    pub timeout: Option<f64>,
}

/// How a followed session ended.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Finished,
    Failed,
    Stopped,
}

pub async fn run(args: RunArgs) -> anyhow::Result<u8> {
    let base = args.url.clone().unwrap_or_else(super::env_url);
    let base = base.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let body = serde_json::json!({
        "type": "start_session",
        "agent_name": args.agent,
        "parameters": {"prompt": args.prompt},
        "project_dir": args.project_dir,
    });
    let resp = client
        .post(format!("{base}/runs"))
        .json(&body)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the coordinator at {base}: {e}"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let msg = resp
            .json::<ErrorBody>()
            .await
            .map(|b| b.message())
            .unwrap_or_else(|_| status.to_string());
        eprintln!("aof: run rejected ({status}): {msg}");
        return Ok(1);
    }
    let created: RunCreateResponse = resp.json().await?;
    eprintln!("run {} · session {}", created.run_id, created.session_id);
    if !args.follow {
        println!("{}", created.session_id);
        return Ok(0);
    }
    let follow = follow_session(&client, &base, &created.session_id);
    let end = match args.timeout {
        Some(t) => match tokio::time::timeout(Duration::from_secs_f64(t), follow).await {
            Ok(r) => r?,
            Err(_) => {
                eprintln!(
                    "aof: gave up after {t}s; session {} is still going",
                    created.session_id
                );
                return Ok(1);
            }
        },
        None => follow.await?,
    };
    eprintln!("session {}: {end:?}", created.session_id);
    Ok(if end == End::Finished { 0 } else { 1 })
}

/// Prints one frame; returns the end state if the session is over.
fn show(frame: &Frame) -> Option<End> {
    let data: serde_json::Value = serde_json::from_str(&frame.data).unwrap_or_default();
    match frame.event.as_str() {
        "event" => {
            let ev = &data["data"];
            let kind = ev["event_type"].as_str().unwrap_or("?");
            match kind {
                "message" => {
                    let text: String = ev["content"]
                        .as_array()
                        .map(|b| b.iter().filter_map(|c| c["text"].as_str()).collect())
                        .unwrap_or_default();
                    println!("[{}] {text}", ev["role"].as_str().unwrap_or("?"));
                }
                "result" => println!("[result] {}", ev["result_text"].as_str().unwrap_or("")),
                "run_failed" => println!("[run_failed] {}", ev["error"].as_str().unwrap_or("")),
                other => println!("[{other}]"),
            }
            None
        }
        "session_updated" | "session_created" => {
            let status = data["session"]["status"].as_str().unwrap_or("");
            match status {
                "finished" | "idle" => Some(End::Finished),
                "failed" => Some(End::Failed),
                "stopped" => Some(End::Stopped),
                _ => None,
            }
        }
        "run_failed" => {
            println!("[run_failed] {}", data["error"].as_str().unwrap_or(""));
            None
        }
        _ => None,
    }
}

async fn follow_session(
    client: &reqwest::Client,
    base: &str,
    session_id: &str,
) -> anyhow::Result<End> {
    let url = format!("{base}/sse/sessions?session_id={session_id}&include_init=false");
    // Start from cursor 0: the replay covers everything the session did so far.
    let mut last = "0".to_string();
    let mut delay = Duration::from_millis(100);
    loop {
        let mut end = None;
        let from = last.clone();
        let res = sse_client::follow(client, &url, Some(&from), |frame| {
            if let Some(id) = &frame.id {
                last = id.clone();
            }
            end = show(&frame);
            end.is_none()
        })
        .await;
        if let Some(e) = end {
            return Ok(e);
        }
        match res {
            Ok(_) => eprintln!("aof: stream closed; reconnecting from event {last}"),
            Err(e) => eprintln!("aof: stream interrupted ({e}); reconnecting from event {last}"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(3));
    }
}
