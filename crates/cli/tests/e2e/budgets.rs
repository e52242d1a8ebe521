//! Run limits end to end (README "Run limits: timeouts and budgets"): the runner's
//! `AOF_RUN_*` settings and an agent's `limits`, enforced by the runner for every
//! executor — a command past its wall-clock limit or token budget, the real Claude Code
//! CLI past a token budget, `model_api` (recorded OpenAI replay) past one. Each fails
//! with the limit's reason, its process stopped, and the session shows a `usage` event.

use std::{path::Path, process::Stdio};

use aof_testkit::{claude_bin, openai::Exchange, openai::Replay, Block, ReplayServer, Rule};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::harness::*;

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// `aof runner` with extra flags and environment; its log in `<dir>/<name>/runner.log`.
fn runner(url: &str, dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
    let rdir = dir.join(name);
    std::fs::create_dir_all(&rdir).unwrap();
    let log = std::fs::File::create(rdir.join("runner.log")).unwrap();
    Command::new(BIN)
        .args([
            "runner",
            "--url",
            url,
            "--hostname",
            name,
            "--stop-grace",
            "1",
        ])
        .arg("--workspace")
        .arg(rdir.join("ws"))
        .args(args)
        .env("AOF_DATA_DIR", rdir.join("data"))
        .env("RUST_LOG", "info,aof_runner=debug")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn runner")
}

fn runner_log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name).join("runner.log")).unwrap_or_default()
}

async fn create_agent(url: &str, body: Value) {
    let (st, b) = call("POST", &format!("{url}/agents"), Some(body)).await;
    assert_eq!(st, 201, "{b}");
}

/// Start a session of `agent`; (run id, session id).
async fn run_agent(url: &str, agent: &str, prompt: &str) -> (String, String) {
    let (st, b) = call(
        "POST",
        &format!("{url}/runs"),
        Some(json!({"type": "start_session", "agent_name": agent,
                    "parameters": {"prompt": prompt}})),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    (
        b["run_id"].as_str().unwrap().to_string(),
        b["session_id"].as_str().unwrap().to_string(),
    )
}

async fn run_error(url: &str, run_id: &str) -> String {
    let (_, run) = call("GET", &format!("{url}/runs/{run_id}"), None).await;
    run["error"].as_str().unwrap_or("").to_string()
}

async fn usage_events(url: &str, sid: &str) -> Vec<Value> {
    events(url, sid)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "usage")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_runs_past_their_limits_are_stopped_and_fail_with_the_reason() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    // "sleep": a background sleep (its pid printed) the stop must reach; "tokens":
    // reports 1234 tokens used, then waits; anything else: answers at once.
    let script = r#"read p; case "$p" in
        sleep) sleep 300 & echo "pid $!"; wait;;
        tokens) echo '{"event_type": "usage", "input_tokens": 1134, "output_tokens": 100}'; sleep 300 & echo "pid $!"; wait;;
        *) echo "you said: $p";;
    esac"#;
    let command = format!("sh -c '{}'", script.replace('\'', "'\\''"));
    let _r = runner(
        &c.url,
        dir.path(),
        "cmd",
        &["--executor", "command", "--command", &command],
        &[("AOF_RUN_TIMEOUT", "600"), ("AOF_RUN_MAX_TOKENS", "1000")],
    );

    // Bad limits on an agent are refused with the reason, nothing stored.
    for (limits, want) in [
        (json!({"max_tokens": 0}), "max_tokens must be at least 1"),
        (json!({"timeout": 3}), "unknown field `timeout`"),
        (
            json!({"timeout_seconds": -2}),
            "timeout_seconds must be a positive",
        ),
        (json!("fast"), "limits: invalid type"),
    ] {
        let (st, b) = call(
            "POST",
            &format!("{}/agents", c.url),
            Some(json!({"name": "bad", "description": "d", "limits": limits})),
        )
        .await;
        assert_eq!(
            (st, b["code"].as_str()),
            (422, Some("invalid_limits")),
            "{b}"
        );
        assert!(b["detail"].as_str().unwrap().contains(want), "{b}");
    }
    let (st, _) = call("GET", &format!("{}/agents/bad", c.url), None).await;
    assert_eq!(st, 404);
    // An agent may tighten the runner's limits; its `limits` are on the agent.
    create_agent(
        &c.url,
        json!({"name": "slow", "description": "d", "limits": {"timeout_seconds": 2}}),
    )
    .await;
    let (_, agent) = call("GET", &format!("{}/agents/slow", c.url), None).await;
    assert_eq!(agent["limits"], json!({"timeout_seconds": 2.0}));

    // Under its limits a run completes, and the session shows the limits it ran under.
    let (_, sid) = run_agent(&c.url, "t", "hello").await;
    wait_session(&c.url, &sid, "finished").await;
    let usage = usage_events(&c.url, &sid).await;
    assert_eq!(
        usage[0]["result_data"]["limits"],
        json!({"timeout_seconds": 600.0, "max_tokens": 1000})
    );
    assert!(usage.iter().all(|e| e["reason"].is_null()), "{usage:#?}");

    // Past the agent's 2 s: stopped, failed with the reason, the process group gone.
    let (run_id, sid) = run_agent(&c.url, "slow", "sleep").await;
    wait_session(&c.url, &sid, "failed").await;
    assert_eq!(
        run_error(&c.url, &run_id).await,
        "wall-clock timeout 2s exceeded",
        "{}",
        runner_log(dir.path(), "cmd")
    );
    let pid = pid_line(&events(&c.url, &sid).await);
    wait_for("the timed-out run's sleep to be gone", || async {
        (!alive(pid)).then_some(())
    })
    .await;
    let usage = usage_events(&c.url, &sid).await;
    let last = usage.last().unwrap();
    assert_eq!(last["reason"], "wall-clock timeout 2s exceeded");
    assert_eq!(last["result_data"]["limits"]["timeout_seconds"], 2.0);

    // Past the runner's token budget, as the program reported it.
    let (run_id, sid) = run_agent(&c.url, "t", "tokens").await;
    wait_session(&c.url, &sid, "failed").await;
    let why = "token budget 1000 exceeded: 1234 used";
    assert_eq!(run_error(&c.url, &run_id).await, why);
    let usage = usage_events(&c.url, &sid).await;
    let last = usage.last().unwrap();
    assert_eq!(last["reason"], why);
    assert_eq!(last["result_data"]["usage"]["total_tokens"], 1234);
    assert_eq!(last["result_data"]["exceeded"], why);
    // The stop reached the program's child even if it started after the report.
    if let Some(pid) = events(&c.url, &sid).await.iter().find_map(pid_of) {
        wait_for("the over-budget run's sleep to be gone", || async {
            (!alive(pid)).then_some(())
        })
        .await;
    }
}

fn pid_of(e: &Value) -> Option<i32> {
    e["content"][0]["text"]
        .as_str()?
        .strip_prefix("pid ")?
        .trim()
        .parse()
        .ok()
}

fn pid_line(events: &[Value]) -> i32 {
    events
        .iter()
        .find_map(pid_of)
        .unwrap_or_else(|| panic!("no pid line in {events:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_api_past_its_token_budget_fails_with_the_reason() {
    let path = format!(
        "{}/../executors/src/model/fixtures/answer.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let answer = Exchange::parse_lines(&std::fs::read_to_string(&path).unwrap());
    let prompt = answer[0].request["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    let replay = Replay::start(answer).await.unwrap();
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let _r = runner(&c.url, dir.path(), "echo", &[], &[]);
    let executor = json!({"kind": "model_api", "base_url": replay.base_url(),
        "model": "qwen2.5-coder-0.5b-instruct-q4_k_m", "retries": 0});
    // The recorded answer used 62 tokens (60 prompt + 2 completion).
    create_agent(
        &c.url,
        json!({"name": "frugal", "description": "d", "executor": executor,
               "limits": {"max_tokens": 50}}),
    )
    .await;
    // model_api's own `token_budget` is the same limit: the tighter one wins.
    let mut own_budget = executor.clone();
    own_budget["token_budget"] = json!(61);
    create_agent(
        &c.url,
        json!({"name": "roomy", "description": "d", "executor": own_budget,
               "limits": {"max_tokens": 10000}}),
    )
    .await;
    for (agent, want) in [
        ("frugal", "token budget 50 exceeded: 62 used"),
        ("roomy", "token budget 61 exceeded: 62 used"),
    ] {
        let (run_id, sid) = run_agent(&c.url, agent, &prompt).await;
        wait_session(&c.url, &sid, "failed").await;
        assert_eq!(
            run_error(&c.url, &run_id).await,
            want,
            "{}",
            runner_log(dir.path(), "echo")
        );
        let usage = usage_events(&c.url, &sid).await;
        let last = usage.last().unwrap();
        assert_eq!(last["reason"], want);
        assert_eq!(last["result_data"]["usage"]["input_tokens"], 60);
        assert_eq!(last["result_data"]["usage"]["output_tokens"], 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_past_a_token_budget_is_stopped_and_fails() {
    let Some(bin) = claude_bin() else { return };
    // The model asks for a long Bash command: the run must not wait for it.
    let replay = ReplayServer::start([Rule::otherwise().reply([
        Block::text("Working on it."),
        Block::tool_use("Bash", json!({"command": "sleep 300"})),
    ])])
    .await
    .unwrap();
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let url = replay.base_url();
    let _r = runner(
        &c.url,
        dir.path(),
        "claude",
        &["--executor", "claude_code"],
        &[
            ("AOF_CLAUDE_BIN", bin.to_str().unwrap()),
            ("AOF_CLAUDE_ALLOWED_TOOLS", "Bash"),
            ("ANTHROPIC_BASE_URL", &url),
            ("ANTHROPIC_API_KEY", "sk-ant-replay"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            // The CLI's first request alone is thousands of tokens.
            ("AOF_RUN_MAX_TOKENS", "1000"),
        ],
    );
    let (run_id, sid) = run_agent(&c.url, "t", "please work").await;
    wait_session(&c.url, &sid, "failed").await;
    let error = run_error(&c.url, &run_id).await;
    assert!(
        error.starts_with("token budget 1000 exceeded: ") && error.ends_with(" used"),
        "{error}\n{}",
        runner_log(dir.path(), "claude")
    );
    let used: u64 = error
        .trim_start_matches("token budget 1000 exceeded: ")
        .trim_end_matches(" used")
        .parse()
        .unwrap();
    assert!(used > 1000, "{error}");
    let usage = usage_events(&c.url, &sid).await;
    let last = usage.last().unwrap();
    assert_eq!(last["reason"].as_str(), Some(error.as_str()));
    // Reports that came in while it stopped (the result's totals) still count.
    assert!(
        last["result_data"]["usage"]["total_tokens"]
            .as_u64()
            .unwrap()
            >= used,
        "{usage:#?}"
    );
    assert_eq!(last["result_data"]["limits"]["max_tokens"], 1000);
}
