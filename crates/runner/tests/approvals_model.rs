//! Issue #25 end to end with the `model_api` executor: a real coordinator and runner
//! (in process, over loopback HTTP), the real `llama-server` with Qwen2.5-Coder-1.5B
//! behind a recording proxy, and a real MCP calculator. The blueprint lists the `add`
//! tool, so the call waits as a pending approval until the test, acting as the
//! operator, decides through the API.
//!
//! Without `AOF_LLAMA_SERVER` / `AOF_LLM_MODEL_15B` (`eval "$(bash scripts/ci/llm.sh)"`)
//! the tests are skipped with a note, except under `CI=true`, where they fail.

#[path = "support/stack.rs"]
mod stack;

use aof_executors::{approval::ApprovalPolicy, ExecutorConfig};
use aof_testkit::{
    llama::{Llama, MODEL_15B},
    mcp::ToolServer,
    openai::Recorder,
};
use serde_json::{json, Value};
use stack::{of_type, Stack};

const SYSTEM: &str = "You are a calculator assistant. To add numbers call the add tool. \
When a tool result arrives, answer the user in one short sentence that states the result, without calling any tool again.";
const PROMPT: &str = "What is 17 + 25? Use the add tool.";

/// One model server at a time: two loading and generating at once on a small CI
/// machine only make both slow.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The stack with the calculator agent (`approval: {tools: ["add"]}`) pointed at the
/// recording proxy.
async fn setup(llama: &Llama) -> (Stack, Recorder, ToolServer) {
    let recorder = Recorder::start(&llama.base_url()).await.unwrap();
    let tools = ToolServer::start().await.unwrap();
    let s = Stack::start(ExecutorConfig::Echo, ApprovalPolicy::default()).await;
    s.call(
        "POST",
        "/mcp-servers",
        Some(json!({"id": "calc", "name": "Calculator", "url": tools.url()})),
    )
    .await;
    s.agent(json!({
        "name": "calc", "description": "Adds numbers with a tool",
        "system_prompt": SYSTEM,
        "mcp_servers": {"calc": {"ref": "calc"}},
        "approval": {"tools": ["add"], "timeout_seconds": 300},
        "executor": {"kind": "model_api", "base_url": recorder.base_url(),
            "model": "qwen2.5-coder-1.5b-instruct-q4_k_m", "temperature": 0, "seed": 42,
            "max_tokens": 128, "max_steps": 3, "retries": 0}
    }))
    .await;
    (s, recorder, tools)
}

/// The `tool` messages the model was sent, over all requests.
fn tool_messages(recorder: &Recorder) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for e in recorder.exchanges() {
        for m in e.request["messages"].as_array().into_iter().flatten() {
            if m["role"] == "tool" && !out.contains(m) {
                out.push(m.clone());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_call_runs_and_the_model_answers_from_its_result() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(llama) = Llama::start(MODEL_15B).await else {
        return;
    };
    let (s, recorder, tools) = setup(&llama).await;
    let sid = s.run("calc", PROMPT).await;

    let a = s.pending(&sid).await;
    assert_eq!(a["tool_name"], "add", "{a}");
    assert_eq!(a["tool_input"], json!({"a": 17, "b": 25}), "{a}");
    assert_eq!(s.status(&sid).await, "waiting_approval");
    // Waiting means waiting: nothing ran yet.
    assert!(tools.calls().is_empty());

    let d = s
        .decide(
            a["approval_id"].as_str().unwrap(),
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(d["status"], "approved", "{d}");
    let session = s.ended(&sid).await;
    assert_eq!(session["status"], "finished", "{session}\n{}", llama.log());

    assert_eq!(tools.calls().len(), 1);
    let events = s.events(&sid).await;
    let post = of_type(&events, "post_tool");
    assert_eq!(post[0]["content"][0]["text"], "42", "{post:?}");
    assert_eq!(
        tool_messages(&recorder)[0]["content"],
        "42",
        "the model got the tool's result"
    );
    let result = of_type(&events, "result");
    let text = result[0]["result_text"].as_str().unwrap_or("");
    assert!(text.contains("42"), "the answer uses the result: {text}");
    // The coordinator's events around the call: the decision before the result. (The
    // runner's `pre_tool` travels through its outbox while the approval is asked
    // directly, so the two may land in either order.)
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .filter(|t| matches!(*t, "pre_tool" | "post_tool") || t.starts_with("approval_"))
        .collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert_eq!(kinds[2..], ["approval_resolved", "post_tool"], "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_call_is_not_run_and_the_model_reads_the_denial() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(llama) = Llama::start(MODEL_15B).await else {
        return;
    };
    let (s, recorder, tools) = setup(&llama).await;
    let sid = s.run("calc", PROMPT).await;
    let a = s.pending(&sid).await;
    let d = s
        .decide(
            a["approval_id"].as_str().unwrap(),
            json!({"decision": "deny", "message": "use mental arithmetic"}),
        )
        .await;
    assert_eq!(d["status"], "denied", "{d}");
    // Should the model ask again, that call is denied too.
    let session = s
        .until("the session to end", || async {
            let b = s
                .call(
                    "GET",
                    &format!("/approvals?session_id={sid}&status=pending"),
                    None,
                )
                .await;
            for a in b["approvals"].as_array().into_iter().flatten() {
                let id = a["approval_id"].as_str().unwrap();
                s.call(
                    "POST",
                    &format!("/approvals/{id}"),
                    Some(json!({"decision": "deny"})),
                )
                .await;
            }
            let st = s.status(&sid).await;
            matches!(st.as_str(), "finished" | "failed" | "stopped").then_some(st)
        })
        .await;
    // Finished or failed (the small model may ask again until max_steps): either way
    // no call ran.
    assert!(
        matches!(session.as_str(), "finished" | "failed"),
        "{session}"
    );
    assert!(tools.calls().is_empty(), "{:?}", tools.calls());
    let denial = "Denied by reviewer: use mental arithmetic";
    let events = s.events(&sid).await;
    let post = of_type(&events, "post_tool");
    assert_eq!(post[0]["error"], denial, "{post:?}");
    assert_eq!(tool_messages(&recorder)[0]["content"], denial);
}
