//! Against a real `llama-server` (llama.cpp) with Qwen2.5-Coder-1.5B-Instruct, from
//! `scripts/ci/llm.sh` (`AOF_LLAMA_SERVER`, `AOF_LLM_MODEL_15B`; under `CI=true` missing
//! ones fail the test), at temperature 0 with a seed: the whole loop (streamed answer,
//! a real `tool_calls` call to the rmcp calculator, its result fed back, a text answer
//! with the sum) and a resume by a fresh executor from the stored events only.
//!
//! The ignored `record_*` tests re-record the replay fixtures through
//! `aof_testkit::openai::Recorder` (run them with `--run-ignored only`); they need the
//! 0.5B model too (`bash scripts/ci/llm.sh --small`), which is what the fixtures hold.

use std::{path::PathBuf, time::Instant};

use aof_testkit::{
    llama::{Llama, MODEL_05B, MODEL_15B},
    mcp::ToolServer,
    openai::Recorder,
};

use super::*;

pub(super) const MODEL_15B_NAME: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m";

/// The 1.5B settings: deterministic and short (it generates ~11 tokens/s on 2 cores).
fn config_15b(base_url: &str) -> ModelApiConfig {
    ModelApiConfig {
        model: MODEL_15B_NAME.into(),
        max_tokens: Some(64),
        max_steps: Some(3),
        ..config(base_url)
    }
}

/// The end of the server log, for failure messages.
fn tail(llama: &Llama) -> String {
    let log = llama.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_model_calls_an_mcp_tool_answers_and_resumes_elsewhere() {
    let Some(llama) = Llama::start(MODEL_15B).await else {
        return;
    };
    let tools = ToolServer::start().await.unwrap();
    // Through a recording proxy, to see exactly what went to the model and back.
    let rec = Recorder::start(&llama.base_url()).await.unwrap();
    let exec = ModelExecutor::new(config_15b(&rec.base_url())).unwrap();

    let t = Instant::now();
    let (outcome, events) = run(&exec, job("r1", TOOL_PROMPT, Some(&tools.url()))).await;
    let first = t.elapsed();
    let Outcome::Completed {
        result_text,
        result_data,
    } = &outcome
    else {
        panic!("{outcome:?}\n{events:#?}\n{}", tail(&llama))
    };
    let answer = result_text.clone().unwrap();
    assert!(answer.contains("42"), "answer without the sum: {answer:?}");
    let data = result_data.as_ref().unwrap();
    assert_eq!(data["steps"], 2, "{data}");
    assert_eq!(data["finish_reason"], "stop");
    assert!(
        data["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
        "{data}"
    );
    assert!(data["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    // Step 1: the server streamed a real `tool_calls` delta (not text to parse) ...
    let ex = rec.exchanges();
    assert_eq!(ex.len(), 2, "{ex:#?}");
    assert!(ex[0].body.contains(r#""tool_calls":[{"#), "{}", ex[0].body);
    assert!(ex[0].body.contains(r#""finish_reason":"tool_calls""#));
    // ... which the real MCP server ran, with the blueprint's header ...
    let calls = tools.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].tool, "add");
    assert_eq!(calls[0].arguments, json!({"a": 17, "b": 25}));
    assert_eq!(calls[0].token.as_deref(), Some("t0k"));
    let pre = of_type(&events, "pre_tool");
    let post = of_type(&events, "post_tool");
    assert_eq!((pre.len(), post.len()), (1, 1), "{events:#?}");
    assert_eq!(post[0]["content"][0]["text"], "42");
    // ... and step 2 got the result back as a `tool` message and answered in text.
    let sent = ex[1].request["messages"].as_array().unwrap();
    let call_id = &pre[0]["content"][0]["id"];
    assert_eq!(
        sent.last().unwrap(),
        &json!({"role": "tool", "tool_call_id": call_id, "content": "42"})
    );
    assert!(!ex[1].body.contains("tool_calls"), "{}", ex[1].body);
    // Streamed: the deltas spell out the steps' text, ending with the answer.
    let deltas: String = of_type(&events, "message_delta").iter().map(text).collect();
    let steps = of_type(&events, "message");
    assert_eq!(steps.len(), 2);
    assert_eq!(deltas, steps.iter().map(text).collect::<String>());
    assert_eq!(text(&steps[1]), answer);

    // Resume: a fresh executor (another runner) gets only the stored events.
    let t = Instant::now();
    let exec = ModelExecutor::new(config_15b(&rec.base_url())).unwrap();
    let mut j = job("r2", FOLLOW_UP, Some(&tools.url()));
    j.history = Some(stored("r1", &events, TOOL_PROMPT));
    let (outcome, events2) = run(&exec, j).await;
    let resumed = t.elapsed();
    let Outcome::Completed { result_text, .. } = &outcome else {
        panic!("{outcome:?}\n{events2:#?}\n{}", tail(&llama))
    };
    // Only the earlier turns hold 42: the model saw them.
    let answer2 = result_text.clone().unwrap();
    assert!(answer2.contains("42"), "{answer2:?}");
    assert_eq!(tools.calls().len(), 1, "the follow-up needs no tool");
    let sent = rec.exchanges().pop().unwrap().request["messages"].clone();
    let roles: Vec<&str> = sent
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool", "assistant", "user"]
    );
    assert_eq!(sent[1]["content"], TOOL_PROMPT);
    assert_eq!(sent[3]["content"], "42");
    assert_eq!(sent[4]["content"], answer.as_str());
    assert_eq!(sent[5]["content"], FOLLOW_UP);
    eprintln!(
        "real 1.5B: tool run {:.1}s, resume {:.1}s, answers {answer:?} / {answer2:?}, \
         generation tokens/s per step {:?}",
        first.as_secs_f64(),
        resumed.as_secs_f64(),
        llama.tokens_per_second()
    );
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(format!("{}/src/model/fixtures", env!("CARGO_MANIFEST_DIR")))
}

fn save(name: &str, rec: &Recorder) {
    let ex = rec.exchanges();
    std::fs::write(
        fixtures_dir().join(format!("{name}.jsonl")),
        Exchange::to_lines(&ex),
    )
    .unwrap();
}

/// Re-records `answer`, `tool` and `resume` from the real 0.5B server (run on purpose,
/// not in CI): it calls the tool again after the result, so `tool` ends at max_steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "re-records the replay fixtures from a real llama-server"]
async fn record_fixtures() {
    let llama = Llama::start(MODEL_05B).await.expect("the 0.5B model");
    let tools = ToolServer::start().await.unwrap();

    let rec = Recorder::start(&llama.base_url()).await.unwrap();
    let exec = ModelExecutor::new(config(&rec.base_url())).unwrap();
    let (o, _) = run(&exec, job("r1", ANSWER_PROMPT, None)).await;
    assert!(matches!(o, Outcome::Completed { .. }), "{o:?}");
    save("answer", &rec);

    let rec = Recorder::start(&llama.base_url()).await.unwrap();
    let exec = ModelExecutor::new(config(&rec.base_url())).unwrap();
    let (o, events) = run(&exec, job("r1", TOOL_PROMPT, Some(&tools.url()))).await;
    eprintln!("tool: {o:?}");
    save("tool", &rec);

    let rec = Recorder::start(&llama.base_url()).await.unwrap();
    let exec = ModelExecutor::new(config(&rec.base_url())).unwrap();
    let mut j = job("r2", FOLLOW_UP, Some(&tools.url()));
    j.history = Some(stored("r1", &events, TOOL_PROMPT));
    let (o, _) = run(&exec, j).await;
    eprintln!("resume: {o:?}");
    save("resume", &rec);
}

/// Re-records the real server's error cases (run on purpose, not in CI):
/// `malformed`: the 0.5B model at temperature 0.8, seed 2, asked to show its call in a
/// code block, fences the JSON; llama.cpp's parser rejects it and the stream ends with
/// an error event (code 500) and no finish chunk.
/// `cut`: the 1.5B server is killed (SIGKILL) while it streams a tool call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "re-records the error fixtures from a real llama-server"]
async fn record_error_fixtures() {
    let tools = ToolServer::start().await.unwrap();
    {
        let llama = Llama::start(MODEL_05B).await.expect("the 0.5B model");
        let rec = Recorder::start(&llama.base_url()).await.unwrap();
        let exec = ModelExecutor::new(malformed_config(&rec.base_url())).unwrap();
        let (o, _) = run(&exec, job("r1", FENCED_PROMPT, Some(&tools.url()))).await;
        eprintln!("malformed: {o:?}");
        assert!(
            rec.exchanges()[0].body.contains(r#"data: {"error":"#),
            "no error event this time: {:#?}",
            rec.exchanges()
        );
        save("malformed", &rec);
    }
    let mut llama = Llama::start(MODEL_15B).await.expect("the 1.5B model");
    let rec = Recorder::start(&llama.base_url()).await.unwrap();
    let exec = ModelExecutor::new(config_15b(&rec.base_url())).unwrap();
    let running = run(&exec, job("r1", TOOL_PROMPT, Some(&tools.url())));
    let killer = async {
        // A few chunks in: the role chunk and the first pieces of the call.
        while rec.received() < 1500 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        llama.kill();
    };
    let ((o, _), ()) = tokio::join!(running, killer);
    eprintln!("cut: {o:?}");
    let ex = rec.exchanges();
    assert!(ex[0].cut, "{ex:#?}");
    // Keep the first attempt only: retries met a dead server (connection refused).
    std::fs::write(
        fixtures_dir().join("cut.jsonl"),
        Exchange::to_lines(&ex[..1]),
    )
    .unwrap();
}

/// Re-records `loading` (run on purpose, not in CI): requests sent while the 0.5B
/// server still loads its model get HTTP 503 "Loading model"; the executor retries
/// with backoff until the model answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "re-records the loading fixture from a real llama-server"]
async fn record_loading_fixture() {
    let llama = Llama::start_loading(MODEL_05B)
        .await
        .expect("the 0.5B model");
    let rec = Recorder::start(&llama.base_url()).await.unwrap();
    let mut cfg = config(&rec.base_url());
    cfg.retries = Some(10);
    let exec = ModelExecutor::new(cfg)
        .unwrap()
        .with_backoff(std::time::Duration::from_millis(200));
    let (o, _) = run(&exec, job("r1", ANSWER_PROMPT, None)).await;
    assert!(matches!(o, Outcome::Completed { .. }), "{o:?}");
    let ex = rec.exchanges();
    assert_eq!(
        ex[0].status, 503,
        "the model loaded before the first request"
    );
    save("loading", &rec);
}
