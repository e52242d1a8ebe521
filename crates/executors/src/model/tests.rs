//! The `model_api` executor against (1) byte-for-byte replays of exchanges recorded
//! from a real llama.cpp `llama-server` (`fixtures/*.jsonl`, see `real.rs` for how
//! they are recorded) for exact assertions, including the server's real failures, and
//! (2) the real server with Qwen2.5-Coder-1.5B (`real.rs`). Tools come from a real rmcp
//! MCP server (`aof_testkit::mcp`).
//!
//! The `answer`, `tool` and `resume` fixtures hold the 0.5B model, which calls the tool
//! again after its result (so `tool` ends at max_steps); the 1.5B model answers, which
//! `real.rs` shows live.

mod approvals;
mod failures;
mod real;

use std::time::Duration;

use aof_testkit::{
    mcp::ToolServer,
    openai::{Exchange, Replay},
};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::{ExecCx, ExecEvent, Executor, ExecutorConfig, Job, Outcome};

pub(super) const MODEL: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";
pub(super) const SYSTEM: &str = "You are a calculator assistant. To add numbers call the add tool. \
When a tool result arrives, answer the user in one short sentence that states the result, without calling any tool again.";
pub(super) const TOOL_PROMPT: &str = "What is 17 + 25? Use the add tool.";
pub(super) const ANSWER_PROMPT: &str = "Name the capital of France in one word.";
pub(super) const FOLLOW_UP: &str =
    "What was the result of that addition? Answer with just the number.";
/// Makes the 0.5B model fence its call at temperature 0.8 (seed 2): malformed output.
pub(super) const FENCED_PROMPT: &str =
    "What is 17 + 25? Show the add tool call inside a ```json code block.";

/// The sampling `malformed.jsonl` was recorded with; retries allowed, to show that a
/// malformed answer is not retried.
pub(super) fn malformed_config(base_url: &str) -> ModelApiConfig {
    ModelApiConfig {
        temperature: Some(0.8),
        seed: Some(2),
        retries: Some(3),
        ..config(base_url)
    }
}

pub(super) fn fixture(name: &str) -> Vec<Exchange> {
    let path = format!(
        "{}/src/model/fixtures/{name}.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Exchange::parse_lines(&text)
}

pub(super) fn config(base_url: &str) -> ModelApiConfig {
    ModelApiConfig {
        base_url: base_url.into(),
        model: MODEL.into(),
        temperature: Some(0.0),
        seed: Some(42),
        max_tokens: Some(128),
        max_steps: Some(2),
        retries: Some(0),
        ..Default::default()
    }
}

pub(super) fn job(run: &str, prompt: &str, tool_url: Option<&str>) -> Job {
    let blueprint = json!({
        "system_prompt": SYSTEM,
        "mcp_servers": tool_url.map(|u| json!({"calc": {"url": u, "config": {"headers": {"x-test-token": "t0k"}}}})),
    });
    Job {
        run_id: run.into(),
        session_id: "ses_model".into(),
        agent_name: Some("calc".into()),
        prompt: prompt.into(),
        parameters: json!({}),
        project_dir: None,
        resume: None,
        blueprint: None,
        system_prompt: None,
        orchestrator_mcp_url: None,
        history: None,
    }
    .with_blueprint(Some(blueprint))
}

/// Runs one job to its end: the outcome and every event, in order.
pub(super) async fn run(exec: &ModelExecutor, job: Job) -> (Outcome, Vec<ExecEvent>) {
    run_with(exec, job, CancellationToken::new()).await
}

pub(super) async fn run_with(
    exec: &ModelExecutor,
    job: Job,
    cancel: CancellationToken,
) -> (Outcome, Vec<ExecEvent>) {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::channel(1024);
    let cx = ExecCx {
        workdir: dir.path().to_path_buf(),
        env: Default::default(),
        cancel,
        events: tx,
        stop_grace: Duration::from_secs(2),
        state_dir: dir.path().to_path_buf(),
        session_dir: dir.path().to_path_buf(),
        agent: Default::default(),
        approval: Default::default(),
    };
    let ex = exec.start(job, cx).await.expect("start");
    let collect = async {
        let mut out = Vec::new();
        while let Some(ev) = rx.recv().await {
            out.push(ev);
        }
        out
    };
    let (outcome, events) = tokio::join!(ex.done, collect);
    (outcome.unwrap().unwrap(), events)
}

/// The structured events of one `event_type`.
pub(super) fn of_type(events: &[ExecEvent], kind: &str) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            ExecEvent::Structured { event } if event["event_type"] == kind => Some(event.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn text(ev: &Value) -> String {
    ev["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect()
}

/// The final assistant text of a recorded conversation: the last exchange's chunks.
fn recorded_text(e: &Exchange) -> String {
    let mut m = api::Merge::default();
    for line in e.body.lines() {
        if let Some(d) = line.strip_prefix("data: ") {
            if d.trim() != "[DONE]" {
                m.chunk(d).unwrap();
            }
        }
    }
    m.finish().text
}

/// Complete SSE `data:` frames of a recorded body, `[DONE]` excluded.
fn data_frames(body: &str) -> Vec<Value> {
    body.split_inclusive("\n\n")
        .filter(|f| f.ends_with("\n\n"))
        .filter_map(|f| f.trim().strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn recorded_usage(exchanges: &[Exchange]) -> u64 {
    exchanges
        .iter()
        .filter_map(|e| {
            e.body
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .find_map(|v| v["usage"]["total_tokens"].as_u64())
        })
        .sum()
}

#[test]
fn settings_are_checked() {
    let parse = |v: Value| {
        ExecutorConfig::from_blueprint(Some(&json!({"executor": v}))).map_err(|e| e.to_string())
    };
    let ok = parse(
        json!({"kind": "model_api", "base_url": "http://h:1/v1", "model": "m",
        "api_key_env": "OPENAI_API_KEY", "temperature": 0, "max_tokens": 64, "max_steps": 3,
        "timeout_seconds": 60, "token_budget": 5000, "retries": 2, "seed": 1}),
    )
    .unwrap()
    .unwrap();
    assert_eq!(ok.kind(), "model_api");
    assert_eq!(ok.command_line(), "http://h:1/v1 m");
    let back: ExecutorConfig = serde_json::from_value(serde_json::to_value(&ok).unwrap()).unwrap();
    assert_eq!(back, ok);
    let err = parse(
        json!({"kind": "model_api", "base_url": "http://h/v1", "model": "m", "api_key": "sk-1"}),
    )
    .unwrap_err();
    assert!(err.contains("inline api_key is not allowed"), "{err}");
    for (bad, needle) in [
        (
            json!({"kind": "model_api", "base_url": "ftp://h", "model": "m"}),
            "base_url",
        ),
        (
            json!({"kind": "model_api", "base_url": "http://h", "model": ""}),
            "model",
        ),
        (
            json!({"kind": "model_api", "base_url": "http://h", "model": "m", "max_steps": 0}),
            "max_steps",
        ),
        (
            json!({"kind": "model_api", "base_url": "http://h", "model": "m", "temperature": 3}),
            "temperature",
        ),
        (
            json!({"kind": "model_api", "base_url": "http://h", "model": "m", "timeout_seconds": 0}),
            "timeout_seconds",
        ),
        (
            json!({"kind": "model_api", "base_url": "http://h", "model": "m", "token_budget": 0}),
            "token_budget",
        ),
        (
            json!({"kind": "model_api", "base_url": "http://h", "model": "m",
            "api_key_env": "A", "api_key_file": "/k"}),
            "not both",
        ),
        (
            json!({"kind": "model_api", "base_url": "http://h", "model": "m",
            "api_key_env": "AOF_API_KEY"}),
            "may not name AOF_API_KEY",
        ),
        (
            json!({"kind": "model_api", "base_url": "http://h", "model": "m",
            "api_key_env": "AOF_DATABASE_URL"}),
            "may not name AOF_DATABASE_URL",
        ),
        (
            json!({"kind": "model_api", "base_url": "http://h", "model": "m", "modle": "x"}),
            "unknown field `modle`",
        ),
        (
            json!({"kind": "model_api", "model": "m"}),
            "missing field `base_url`",
        ),
    ] {
        let err = parse(bad.clone()).unwrap_err();
        assert!(err.contains(needle), "{bad}: {err}");
    }
}

#[tokio::test]
async fn api_key_comes_from_the_runner_environment_or_a_file() {
    let replay = Replay::start(fixture("answer")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "sk-from-file\n").unwrap();
    let mut cfg = config(&replay.base_url());
    cfg.api_key_file = Some(key_file.display().to_string());
    let exec = ModelExecutor::new(cfg.clone()).unwrap();
    let (outcome, _) = run(&exec, job("r1", ANSWER_PROMPT, None)).await;
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
    // The request carried the key; the replay records bodies only, so check the
    // failing paths stop the start clearly instead: a missing variable, and the
    // runner's own environment as a key file.
    let start_err = |cfg: ModelApiConfig| async {
        let (tx, _rx) = mpsc::channel(1);
        let cx = ExecCx {
            workdir: dir.path().into(),
            env: Default::default(),
            cancel: CancellationToken::new(),
            events: tx,
            stop_grace: Duration::from_secs(1),
            state_dir: dir.path().into(),
            session_dir: dir.path().into(),
            agent: Default::default(),
            approval: Default::default(),
        };
        let exec = ModelExecutor::new(cfg).unwrap();
        exec.start(job("r2", "x", None), cx)
            .await
            .err()
            .unwrap()
            .to_string()
    };
    cfg.api_key_file = None;
    cfg.api_key_env = Some("TEST_SURELY_UNSET_MODEL_KEY".into());
    let err = start_err(cfg.clone()).await;
    assert!(
        err.contains("no variable TEST_SURELY_UNSET_MODEL_KEY"),
        "{err}"
    );
    cfg.api_key_env = None;
    for path in ["/proc/self/environ", "/proc/1/environ"] {
        cfg.api_key_file = Some(path.into());
        let err = start_err(cfg.clone()).await;
        assert!(err.contains("not under /proc"), "{path}: {err}");
    }
}

#[tokio::test]
async fn replay_streams_an_answer() {
    let exchanges = fixture("answer");
    let replay = Replay::start(exchanges.clone()).await.unwrap();
    let exec = ModelExecutor::new(config(&replay.base_url())).unwrap();
    let (outcome, events) = run(&exec, job("r1", ANSWER_PROMPT, None)).await;
    let want = recorded_text(exchanges.last().unwrap());
    assert!(!want.is_empty());
    let Outcome::Completed {
        result_text,
        result_data,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(result_text.as_deref(), Some(want.as_str()));
    let data = result_data.unwrap();
    assert_eq!(data["steps"], 1);
    assert_eq!(data["finish_reason"], "stop");
    assert_eq!(data["usage"]["total_tokens"], recorded_usage(&exchanges));
    // Deltas add up to the message; the message carries the step's usage.
    let deltas: String = of_type(&events, "message_delta").iter().map(text).collect();
    assert_eq!(deltas, want);
    let msgs = of_type(&events, "message");
    assert_eq!(msgs.len(), 1);
    assert_eq!(text(&msgs[0]), want);
    assert_eq!(msgs[0]["result_data"]["step"], 1);
    assert_eq!(msgs[0]["result_data"]["usage"], data["usage"]);
    // The request: streamed with usage, the system prompt first, no tools.
    let req = &replay.requests()[0];
    assert_eq!(req["stream"], true);
    assert_eq!(req["stream_options"]["include_usage"], true);
    assert_eq!(
        req["messages"][0],
        json!({"role": "system", "content": SYSTEM})
    );
    assert_eq!(
        req["messages"][1],
        json!({"role": "user", "content": ANSWER_PROMPT})
    );
    assert_eq!(req["temperature"], 0.0);
    assert_eq!(req["seed"], 42);
    assert!(req.get("tools").is_none());
}

/// The real 0.5B model calls the tool, gets its result, and calls it again (as
/// NOTES-llm.md warns): the loop runs both calls and ends at `max_steps`, clearly.
#[tokio::test]
async fn replay_calls_an_mcp_tool_and_sends_the_result_back() {
    let exchanges = fixture("tool");
    let replay = Replay::start(exchanges.clone()).await.unwrap();
    let tools = ToolServer::start().await.unwrap();
    let exec = ModelExecutor::new(config(&replay.base_url())).unwrap();
    let (outcome, events) = run(&exec, job("r1", TOOL_PROMPT, Some(&tools.url()))).await;
    assert_eq!(
        outcome,
        Outcome::Failed {
            error: "model_api: max_steps (2) reached without a final answer (the model kept calling tools)".into()
        }
    );
    // The real MCP server ran each call, with the blueprint's header.
    let calls = tools.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for c in &calls {
        assert_eq!(c.tool, "add");
        assert_eq!(c.arguments, json!({"a": 17, "b": 25}));
        assert_eq!(c.token.as_deref(), Some("t0k"));
    }
    // Events: per step an assistant message with the call, then pre_tool and post_tool.
    let pre = of_type(&events, "pre_tool");
    let post = of_type(&events, "post_tool");
    let msgs = of_type(&events, "message");
    assert_eq!((pre.len(), post.len(), msgs.len()), (2, 2, 2));
    for i in 0..2 {
        assert_eq!(pre[i]["tool_name"], "add");
        assert_eq!(pre[i]["tool_input"], json!({"a": 17, "b": 25}));
        assert_eq!(post[i]["content"][0]["text"], "42");
        assert!(post[i].get("error").is_none());
        let call = msgs[i]["content"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "tool_call")
            .unwrap()
            .clone();
        assert_eq!(call["name"], "add");
        assert_eq!(pre[i]["content"][0]["id"], call["id"]);
        assert_eq!(post[i]["content"][0]["tool_call_id"], call["id"]);
        assert_eq!(msgs[i]["result_data"]["finish_reason"], "tool_calls");
        assert_eq!(msgs[i]["result_data"]["step"], i + 1);
    }
    // The tools offered, and the second request sending the result back as `tool`.
    let reqs = replay.requests();
    assert_eq!(reqs.len(), 2);
    let names: Vec<&str> = reqs[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(names, ["add", "wait_forever"]);
    let call_id = &msgs[0]["content"][0]["id"];
    let last = reqs[1]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last,
        json!({"role": "tool", "tool_call_id": call_id, "content": "42"})
    );
}

/// Stored events of a finished run, as the coordinator would return them.
pub(super) fn stored(run: &str, events: &[ExecEvent], prompt: &str) -> Vec<aof_wire::StoredEvent> {
    let mut out = vec![aof_wire::Event::message("ses_model", "user", prompt)];
    for e in events {
        if let ExecEvent::Structured { event } = e {
            let mut event = event.clone();
            event["session_id"] = "ses_model".into();
            event["timestamp"] = "2026-01-01T00:00:00Z".into();
            out.push(serde_json::from_value(event).unwrap());
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(i, event)| aof_wire::StoredEvent {
            id: i as i64 + 1,
            seq: i as i64 + 1,
            run_id: Some(run.into()),
            event,
        })
        .collect()
}

#[tokio::test]
async fn replay_resume_continues_the_stored_conversation() {
    let mut exchanges = fixture("tool");
    exchanges.extend(fixture("resume"));
    let replay = Replay::start(exchanges.clone()).await.unwrap();
    let tools = ToolServer::start().await.unwrap();
    let exec = ModelExecutor::new(config(&replay.base_url())).unwrap();
    let (first, events) = run(&exec, job("r1", TOOL_PROMPT, Some(&tools.url()))).await;
    assert!(matches!(first, Outcome::Failed { .. }), "{first:?}");
    // A new executor (another runner) gets only the stored events.
    let exec = ModelExecutor::new(config(&replay.base_url())).unwrap();
    let mut j = job("r2", FOLLOW_UP, Some(&tools.url()));
    j.history = Some(stored("r1", &events, TOOL_PROMPT));
    let (outcome, _) = run(&exec, j).await;
    let Outcome::Completed { result_text, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(result_text, Some(recorded_text(exchanges.last().unwrap())));
    assert_eq!(result_text.as_deref(), Some("42"));
    let reqs = replay.requests();
    let resumed = reqs.last().unwrap()["messages"].as_array().unwrap().clone();
    let roles: Vec<&str> = resumed.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "assistant",
            "tool",
            "assistant",
            "tool",
            "user"
        ]
    );
    assert_eq!(resumed[1]["content"], TOOL_PROMPT);
    assert_eq!(resumed[6]["content"], FOLLOW_UP);
    // Byte for byte what the recording sent: the rebuilt history is the real one.
    let recorded = fixture("resume")[0].request["messages"].clone();
    assert_eq!(Value::Array(resumed), recorded);
}

#[tokio::test]
async fn endpoint_errors_are_retried_then_fail_clearly() {
    let replay = Replay::start(fixture("answer")).await.unwrap();
    let mut cfg = config(&replay.base_url());
    cfg.retries = Some(3);
    let exec = ModelExecutor::new(cfg.clone())
        .unwrap()
        .with_backoff(Duration::from_millis(10));
    replay.fail_next(2, 503, "Loading model");
    let (outcome, events) = run(&exec, job("r1", ANSWER_PROMPT, None)).await;
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
    assert_eq!(replay.requests().len(), 3);
    assert_eq!(of_type(&events, "message")[0]["result_data"]["attempts"], 3);

    replay.fail_next(10, 429, "rate limited");
    let (outcome, _) = run(&exec, job("r2", ANSWER_PROMPT, None)).await;
    let Outcome::Failed { error } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        error,
        "model_api: step 1: HTTP 429: rate limited (after 4 attempts)"
    );

    // Nothing listening: connection refused, retried, then a clear failure.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    cfg.base_url = format!("http://{closed}/v1");
    cfg.retries = Some(1);
    let exec = ModelExecutor::new(cfg)
        .unwrap()
        .with_backoff(Duration::from_millis(10));
    let (outcome, _) = run(&exec, job("r3", ANSWER_PROMPT, None)).await;
    let Outcome::Failed { error } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        error.starts_with("model_api: step 1: ") && error.ends_with("(after 2 attempts)"),
        "{error}"
    );
}

#[tokio::test]
async fn limits_end_the_loop_with_a_clear_outcome() {
    let tools = ToolServer::start().await.unwrap();
    let replay = Replay::start(fixture("tool")).await.unwrap();
    let mut cfg = config(&replay.base_url());
    cfg.max_steps = Some(1);
    let exec = ModelExecutor::new(cfg.clone()).unwrap();
    let (outcome, _) = run(&exec, job("r1", TOOL_PROMPT, Some(&tools.url()))).await;
    assert_eq!(
        outcome,
        Outcome::Failed {
            error: "model_api: max_steps (1) reached without a final answer (the model kept calling tools)".into()
        }
    );
    // Each step reports the run's usage so far (the runner enforces token budgets).
    // (The recorded model calls the tool again after its result: two steps.)
    cfg.max_steps = Some(2);
    let exec = ModelExecutor::new(cfg.clone()).unwrap();
    let (outcome, events) = run(&exec, job("r2", TOOL_PROMPT, Some(&tools.url()))).await;
    assert!(matches!(outcome, Outcome::Failed { .. }), "{outcome:?}");
    let totals: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            ExecEvent::Usage { usage } => Some(usage.total_tokens()),
            _ => None,
        })
        .collect();
    assert_eq!(totals.len(), 2, "{events:?}");
    assert!(totals[0] > 0 && totals[1] > totals[0], "{totals:?}");

    // A blueprint MCP server that is not there fails the run before any model call.
    let requests = replay.requests().len();
    let exec = ModelExecutor::new(cfg).unwrap();
    let (outcome, _) = run(
        &exec,
        job("r3", TOOL_PROMPT, Some("http://127.0.0.1:9/mcp")),
    )
    .await;
    let Outcome::Failed { error } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        error.starts_with("model_api: MCP server 'calc' (http://127.0.0.1:9/mcp): "),
        "{error}"
    );
    assert_eq!(replay.requests().len(), requests);
}

/// An endpoint that accepts and never answers: a stop ends the run `stopped` (the
/// runner's timeout and budgets stop it the same way).
#[tokio::test]
async fn stop_while_the_endpoint_is_silent() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let (seen_tx, mut seen) = mpsc::channel::<()>(8);
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            open.push(sock);
            let _ = seen_tx.send(()).await;
        }
    });
    let cfg = config(&format!("http://{addr}/v1"));
    let exec = ModelExecutor::new(cfg).unwrap();
    let cancel = CancellationToken::new();
    let stopper = {
        let cancel = cancel.clone();
        async move {
            seen.recv().await;
            cancel.cancel();
        }
    };
    let ((outcome, _), ()) = tokio::join!(
        run_with(&exec, job("r1", ANSWER_PROMPT, None), cancel),
        stopper
    );
    assert_eq!(outcome, Outcome::Stopped);

    hold.abort();
}
