//! `aof run AGENT PROMPT [--follow] [--resume SESSION]`: start (or resume) a session;
//! optionally stream it to the end. Following reconnects if the coordinator goes away
//! and exits 0 only if the session finished well.

use serde_json::json;

use aof_config::Config;

use crate::{
    client::{Api, UrlArg},
    follow::{self, From},
    table::{self, JsonArg},
};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof run demo \"hello\" --follow\n  \
    aof run demo \"and now?\" --resume ses_0123456789ab --follow")]
pub struct RunArgs {
    /// Agent name (an unknown agent runs on the runner's default executor).
    pub agent: String,
    /// The prompt.
    pub prompt: String,
    /// Stream the session's events until it ends; exit 0 only if it finished.
    #[arg(long, short)]
    pub follow: bool,
    /// Continue this session instead of starting a new one.
    #[arg(long, value_name = "SESSION")]
    pub resume: Option<String>,
    /// Project directory for the session.
    #[arg(long)]
    pub project_dir: Option<String>,
    /// Give up following after this many seconds (default: never).
    #[arg(long, value_parser = positive_secs)]
    pub timeout: Option<f64>,
    #[command(flatten)]
    pub url: UrlArg,
    #[command(flatten)]
    pub out: JsonArg,
}

pub fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f > 0.0 && f < 1e9 => Ok(f),
        _ => Err(format!("'{s}' is not a number of seconds > 0")),
    }
}

pub async fn run(args: RunArgs, cfg: &Config) -> anyhow::Result<u8> {
    let api = Api::new(&cfg.api()?)?;
    let body = match &args.resume {
        None => json!({
            "type": "start_session",
            "agent_name": args.agent,
            "parameters": {"prompt": args.prompt},
            "project_dir": args.project_dir,
        }),
        Some(session) => json!({
            "type": "resume_session",
            "session_id": session,
            "parameters": {"prompt": args.prompt},
            "project_dir": args.project_dir,
        }),
    };
    // A resumed session's history holds an earlier end: follow from the cursor before
    // the new run exists, so only this run's outcome counts.
    let from = match (&args.resume, args.follow) {
        (Some(session), true) => From::Cursor(follow::head(&api, session).await?.0),
        _ => From::Start,
    };
    let created = api.post("/runs", &body).await?;
    let session_id = created["session_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    eprintln!(
        "run {} · session {session_id}",
        created["run_id"].as_str().unwrap_or("?")
    );
    if !args.follow {
        if args.out.json {
            table::print_json(&created);
        } else {
            println!("{session_id}");
        }
        return Ok(0);
    }
    follow::follow_to_exit(&api, &session_id, from, args.out.json, args.timeout).await
}
