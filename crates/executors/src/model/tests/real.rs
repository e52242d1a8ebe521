//! Against a real `llama-server` (llama.cpp) with Qwen2.5-Coder-0.5B-Instruct, from
//! `scripts/ci/llm.sh` (`AOF_LLAMA_SERVER`, `AOF_LLM_MODEL`; under `CI=true` missing
//! ones fail the test). The server runs on a free loopback port with the tool-calling
//! chat template in `fixtures/qwen2.5-tools.jinja` (Qwen's own, asking for bare JSON
//! calls, so the server returns real `tool_calls`), and is killed at the end.
//! Assertions hold for any wording: structure, the tool and its arguments.
//!
//! `record_fixtures` (ignored; run it with `--run-ignored only`) re-records the replay
//! fixtures through `aof_testkit::openai::Recorder`.

use std::{path::PathBuf, process::Stdio, time::Duration};

use aof_testkit::{mcp::ToolServer, openai::Recorder};
use tokio::process::{Child, Command};

use super::*;

pub(crate) struct Llama {
    child: Child,
    pub base_url: String,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl Llama {
    /// `None` (test skipped, with a note) when the server or model is not installed,
    /// except under `CI=true`, where that fails.
    pub(crate) async fn start() -> Option<Llama> {
        let (Some(bin), Some(model)) = (env_path("AOF_LLAMA_SERVER"), env_path("AOF_LLM_MODEL"))
        else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but AOF_LLAMA_SERVER / AOF_LLM_MODEL are not set (scripts/ci/llm.sh)"
            );
            eprintln!("skipped: set AOF_LLAMA_SERVER and AOF_LLM_MODEL (eval \"$(bash scripts/ci/llm.sh)\")");
            return None;
        };
        let template = format!(
            "{}/src/model/fixtures/qwen2.5-tools.jinja",
            env!("CARGO_MANIFEST_DIR")
        );
        // A free port: bind, read, release (llama-server does not report a port-0 bind).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log =
            std::fs::File::create(std::env::temp_dir().join(format!("llama-server-{port}.log")))
                .unwrap();
        let child = Command::new(&bin)
            .arg("-m")
            .arg(&model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-c", "4096", "-np", "1", "-t", "2", "--no-webui"])
            .args(["--jinja", "--chat-template-file", &template])
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let llama = Llama {
            child,
            base_url: format!("http://127.0.0.1:{port}/v1"),
        };
        let health = format!("http://127.0.0.1:{port}/health");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(r) = http.get(&health).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "llama-server not healthy within 300 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Some(llama)
    }
}

impl Drop for Llama {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_model_streams_and_calls_an_mcp_tool() {
    let Some(llama) = Llama::start().await else {
        return;
    };
    let tools = ToolServer::start().await.unwrap();
    let exec = ModelExecutor::new(config(&llama.base_url)).unwrap();

    // 1. A streamed answer.
    let (outcome, events) = run(&exec, job("r1", ANSWER_PROMPT, None)).await;
    let Outcome::Completed {
        result_text,
        result_data,
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    let answer = result_text.clone().unwrap();
    assert!(!answer.trim().is_empty());
    let deltas = of_type(&events, "message_delta");
    assert!(!deltas.is_empty());
    assert_eq!(deltas.iter().map(text).collect::<String>(), answer);
    let usage = &result_data.as_ref().unwrap()["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0, "{usage}");

    // 2. A real tool call through the MCP server, its result back to the model, and a
    //    follow-up step (an answer, or at worst more calls until max_steps).
    let (outcome, events) = run(&exec, job("r2", TOOL_PROMPT, Some(&tools.url()))).await;
    let calls = tools.calls();
    assert!(!calls.is_empty(), "no tool call: {outcome:?} {events:#?}");
    assert_eq!(calls[0].tool, "add");
    assert_eq!(calls[0].arguments, json!({"a": 17, "b": 25}));
    let post = of_type(&events, "post_tool");
    assert_eq!(post[0]["content"][0]["text"], "42");
    let steps = of_type(&events, "message");
    assert!(
        steps.len() >= 2,
        "no step after the tool result: {events:#?}"
    );
    match &outcome {
        Outcome::Completed { result_text, .. } => {
            assert!(result_text.as_deref().is_some_and(|t| !t.trim().is_empty()))
        }
        Outcome::Failed { error } => assert!(error.contains("max_steps"), "{error}"),
        Outcome::Stopped => panic!("stopped"),
    }
}

/// Re-records `fixtures/*.jsonl` from the real server (run on purpose, not in CI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "re-records the replay fixtures from a real llama-server"]
async fn record_fixtures() {
    let llama = Llama::start()
        .await
        .expect("AOF_LLAMA_SERVER and AOF_LLM_MODEL");
    let tools = ToolServer::start().await.unwrap();
    let dir = PathBuf::from(format!("{}/src/model/fixtures", env!("CARGO_MANIFEST_DIR")));
    let save = |name: &str, rec: &Recorder| {
        let ex = rec.exchanges();
        std::fs::write(dir.join(format!("{name}.jsonl")), Exchange::to_lines(&ex)).unwrap();
    };

    let rec = Recorder::start(&llama.base_url).await.unwrap();
    let exec = ModelExecutor::new(config(&rec.base_url())).unwrap();
    let (o, _) = run(&exec, job("r1", ANSWER_PROMPT, None)).await;
    assert!(matches!(o, Outcome::Completed { .. }), "{o:?}");
    save("answer", &rec);

    let rec = Recorder::start(&llama.base_url).await.unwrap();
    let exec = ModelExecutor::new(config(&rec.base_url())).unwrap();
    let (o, events) = run(&exec, job("r1", TOOL_PROMPT, Some(&tools.url()))).await;
    eprintln!("tool: {o:?}");
    save("tool", &rec);

    let rec = Recorder::start(&llama.base_url).await.unwrap();
    let exec = ModelExecutor::new(config(&rec.base_url())).unwrap();
    let mut j = job("r2", FOLLOW_UP, Some(&tools.url()));
    j.history = Some(stored("r1", &events, TOOL_PROMPT));
    let (o, _) = run(&exec, j).await;
    eprintln!("resume: {o:?}");
    save("resume", &rec);
}
