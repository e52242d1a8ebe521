//! The session timeline as a conversation: a model_api-like run (streamed deltas, the
//! assistant message, usage, a tool call and its result, the result) reads as a few
//! rows; "Show raw events" lists every stored event; the header names the host and the
//! executor; the Live badge goes when the session finishes.

use serde_json::json;

use super::*;
use crate::driver::Browser;

const ROWS: &str = "#timeline > li";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_api_run_reads_as_a_conversation() {
    let dir = tempdir();
    // Default lease terms: the protocol runner below sends no heartbeats.
    let coord = Coordinator::start(dir.path(), Vec::new()).await;
    let url = coord.url.clone();
    let Some(b) = Browser::start(&url).await else {
        return;
    };
    let manual = ManualRunner::register_as(&url, &["manual"], "gpu-box-7", "model_api").await;
    let sid = ManualRunner::start_session(&url, "What is 17 + 25?").await;
    let run = manual.claim().await;
    manual.report(&run, "started", json!({})).await;
    manual
        .post(
            &run,
            json!({"event_type": "message", "role": "user",
                           "content": [{"type": "text", "text": "What is 17 + 25?"}]}),
        )
        .await;
    manual
        .post(
            &run,
            json!({"event_type": "usage", "result_data": {"usage":
            {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}, "elapsed_seconds": 0.0}}),
        )
        .await;

    b.goto(&format!("/ui/sessions/{sid}")).await;
    b.wait_js(
        "document.getElementById('live').textContent === 'Live'",
        "live badge",
    )
    .await;
    // The header names who ran it: the runner's host and its executor.
    b.wait_js(
        "document.getElementById('session-host').textContent.includes('gpu-box-7')",
        "host in the header",
    )
    .await;
    b.wait_js(
        "document.getElementById('session-executor').textContent.includes('model_api')",
        "executor in the header",
    )
    .await;
    b.wait_js(
        &format!("document.querySelectorAll('{ROWS}').length === 2"),
        "run start and the prompt; usage is no row",
    )
    .await;

    // Deltas grow one assistant row, live...
    let delta = |t: &str| {
        json!({"event_type": "message_delta", "role": "assistant",
               "content": [{"type": "text", "text": t}]})
    };
    manual.post(&run, delta("I will add")).await;
    b.wait_js(
        &format!("document.querySelector('{ROWS}.streaming')"),
        "a streaming row",
    )
    .await;
    manual.post(&run, delta(" them.")).await;
    b.wait_js(
        &format!(
            "document.querySelector('{ROWS}.streaming').textContent.includes('I will add them.')"
        ),
        "the streamed text, grown",
    )
    .await;
    assert_eq!(b.count(ROWS).await, 3, "one row for both deltas");
    // ...and that row becomes the stored message.
    manual
        .post(&run, json!({"event_type": "message", "role": "assistant",
            "content": [{"type": "text", "text": "I will add them."},
                        {"type": "tool_call", "id": "call_1", "name": "add", "arguments": "{\"a\":17,\"b\":25}"}],
            "result_data": {"step": 1}}))
        .await;
    b.wait_js(
        &format!("!document.querySelector('{ROWS}.streaming') && document.querySelectorAll('{ROWS}').length === 3"),
        "the message in the streamed row's place",
    )
    .await;
    manual
        .post(&run, json!({"event_type": "usage", "result_data": {"usage":
            {"input_tokens": 325, "output_tokens": 24, "total_tokens": 349}, "elapsed_seconds": 0.7}}))
        .await;
    // A tool call and its result share one row, with status and duration.
    manual
        .post(
            &run,
            json!({"event_type": "pre_tool", "tool_name": "add",
            "tool_input": {"a": 17, "b": 25}, "content": [{"type": "tool_call", "id": "call_1"}]}),
        )
        .await;
    b.wait_js(
        &format!("document.querySelector('{ROWS}.tool .badge.tool-running')"),
        "a running tool call",
    )
    .await;
    manual
        .post(
            &run,
            json!({"event_type": "post_tool", "tool_name": "add",
            "tool_input": {"a": 17, "b": 25}, "tool_output": 42,
            "content": [{"type": "tool_result", "tool_call_id": "call_1", "text": "42"}]}),
        )
        .await;
    b.wait_js(
        &format!("document.querySelector('{ROWS}.tool .badge.tool-ok')"),
        "the tool call, ok",
    )
    .await;
    assert_eq!(
        b.count(&format!("{ROWS}.tool")).await,
        1,
        "pre and post in one row"
    );
    let tool = b
        .js(&format!(
            "document.querySelector('{ROWS}.tool').textContent"
        ))
        .await;
    let tool = tool.as_str().unwrap();
    assert!(
        tool.contains("add") && tool.contains(" s"),
        "name and duration: {tool}"
    );
    for t in [" The answer", " is 42."] {
        manual.post(&run, delta(t)).await;
    }
    manual
        .post(&run, json!({"event_type": "message", "role": "assistant",
            "content": [{"type": "text", "text": " The answer is 42."}], "result_data": {"step": 2}}))
        .await;
    manual
        .post(
            &run,
            json!({"event_type": "usage", "result_data": {"usage":
            {"input_tokens": 757, "output_tokens": 30, "total_tokens": 787, "cost_usd": 0.0012},
            "elapsed_seconds": 1.4}}),
        )
        .await;
    manual
        .post(
            &run,
            json!({"event_type": "result", "result_text": " The answer is 42.",
            "result_data": {"model": "m", "steps": 2}}),
        )
        .await;
    manual.report(&run, "completed", json!({})).await;
    wait_session(&url, &sid, "finished").await;

    // Run start, prompt, two answers, the tool, the run's card: six rows for 15 events.
    b.wait_js(
        &format!("document.querySelector('{ROWS}.run-card') && document.querySelector('{ROWS}.run-card').textContent.includes('run completed')"),
        "the run's card",
    )
    .await;
    let stored = event_ids(&url, &sid).await;
    assert_eq!(stored.len(), 15);
    assert_eq!(b.count(ROWS).await, 6);
    let card = b
        .js(&format!(
            "document.querySelector('{ROWS}.run-card').textContent"
        ))
        .await;
    let card = card.as_str().unwrap();
    for want in [
        "Tokens in",
        "757",
        "Tokens out",
        "30",
        "$0.0012",
        "Duration",
    ] {
        assert!(card.contains(want), "{want} in the card: {card}");
    }
    let text = b
        .js("document.getElementById('timeline').textContent")
        .await;
    assert_eq!(
        text.as_str().unwrap().matches("The answer is 42.").count(),
        1,
        "the result shown once"
    );
    let totals = b.js("document.getElementById('totals').textContent").await;
    assert!(
        totals.as_str().unwrap().contains("787") || totals.as_str().unwrap().contains("757"),
        "{totals}"
    );
    // Finished: nothing live to show any more.
    b.wait_js("document.getElementById('live').hidden", "no Live badge")
        .await;
    b.check_page("session-conversation").await;

    // The raw log is one click away, and the choice is kept in the URL.
    b.click("#tl-raw").await;
    b.wait_js(
        &format!(
            "document.querySelectorAll('{ROWS}').length === {}",
            stored.len()
        ),
        "every raw event",
    )
    .await;
    assert_eq!(row_ids(&b).await, stored, "raw = stored events");
    assert!(b
        .js("location.search")
        .await
        .as_str()
        .unwrap()
        .contains("raw=1"));
    b.check_page("session-raw").await;
    b.goto(&format!("/ui/sessions/{sid}?raw=1")).await;
    b.wait_js(
        &format!(
            "document.querySelectorAll('{ROWS}').length === {}",
            stored.len()
        ),
        "raw after a reload",
    )
    .await;
    assert_eq!(
        b.js("document.getElementById('tl-raw').checked").await,
        true
    );
    b.click("#tl-raw").await;
    b.wait_js(
        &format!("document.querySelectorAll('{ROWS}').length === 6"),
        "folded again",
    )
    .await;
    assert!(!b
        .js("location.search")
        .await
        .as_str()
        .unwrap()
        .contains("raw"));
    b.close().await;
}
