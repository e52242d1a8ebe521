//! The real server's failures, replayed byte for byte from recordings (`fixtures/`
//! `malformed.jsonl`, `cut.jsonl`, `loading.jsonl`; re-recorded by the ignored
//! `real::record_error_fixtures` and `real::record_loading_fixture`).

use super::*;

/// Recorded from the real server: the 0.5B model fenced its JSON call; llama.cpp
/// streamed the start, then failed to parse it and ended the 200 stream with an error
/// event (code 500), no finish chunk and no `[DONE]`. The step fails with the server's
/// message, once: the output is the model's, a retry would stream it again.
#[tokio::test]
async fn replay_malformed_tool_output_fails_clearly_without_retry() {
    let exchanges = fixture("malformed");
    assert_eq!(exchanges.len(), 1);
    let (status, body) = (exchanges[0].status, &exchanges[0].body);
    assert_eq!(status, 200);
    assert!(!body.contains("[DONE]") && !body.contains(r#""finish_reason":""#));
    let frames = data_frames(body);
    let last = frames.last().unwrap();
    assert_eq!(last["error"]["code"], 500, "{last}");
    let streamed: String = frames
        .iter()
        .filter_map(|f| f["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(streamed.contains("```json"), "{streamed:?}");

    let replay = Replay::start(exchanges.clone()).await.unwrap();
    let tools = ToolServer::start().await.unwrap();
    let exec = ModelExecutor::new(malformed_config(&replay.base_url()))
        .unwrap()
        .with_backoff(Duration::from_millis(10));
    let (outcome, events) = run(&exec, job("r1", FENCED_PROMPT, Some(&tools.url()))).await;
    assert_eq!(
        outcome,
        Outcome::Failed {
            error: format!(
                "model_api: step 1: the endpoint failed mid-stream (error 500 after {} chunk(s)): \
                 The model produced output that does not match the expected peg-native format",
                frames.len() - 1
            )
        }
    );
    assert_eq!(replay.requests().len(), 1, "retried");
    assert!(tools.calls().is_empty(), "a malformed call must not run");
    // What streamed before the failure is in the log; no step message claims more.
    let deltas: String = of_type(&events, "message_delta").iter().map(text).collect();
    assert_eq!(deltas, streamed);
    assert!(of_type(&events, "message").is_empty());
    assert!(of_type(&events, "pre_tool").is_empty());
}

/// Recorded from the real server: killed while it streamed a tool call, so the stream
/// breaks after a few chunks (no finish chunk, no clean end). No text had streamed, so
/// the step is retried (here the replay cuts again each time), then fails saying so.
#[tokio::test]
async fn replay_cut_stream_is_retried_then_fails_clearly() {
    let exchanges = fixture("cut");
    assert_eq!(exchanges.len(), 1);
    assert!(exchanges[0].cut);
    let frames = data_frames(&exchanges[0].body);
    assert!(frames
        .iter()
        .all(|f| f["choices"][0]["finish_reason"].is_null()));
    assert!(frames
        .iter()
        .any(|f| f["choices"][0]["delta"]["tool_calls"].is_array()));
    let replay = Replay::start(exchanges.clone()).await.unwrap();
    let tools = ToolServer::start().await.unwrap();
    let mut cfg = config(&replay.base_url());
    cfg.retries = Some(2);
    let exec = ModelExecutor::new(cfg)
        .unwrap()
        .with_backoff(Duration::from_millis(10));
    let (outcome, events) = run(&exec, job("r1", TOOL_PROMPT, Some(&tools.url()))).await;
    assert_eq!(
        outcome,
        Outcome::Failed {
            error: format!(
                "model_api: step 1: the stream ended without a finish_reason (cut off after {} \
                 chunk(s)) (after 3 attempts)",
                frames.len()
            )
        }
    );
    assert_eq!(replay.requests().len(), 3);
    assert!(
        tools.calls().is_empty(),
        "a half-streamed call must not run"
    );
    assert!(of_type(&events, "message").is_empty());
    assert!(of_type(&events, "message_delta").is_empty());
}

/// Recorded from the real server while it still loaded its model: HTTP 503 "Loading
/// model" a few times, then the answer. Retried with backoff until it answers; with
/// fewer retries, a clear failure with the server's message.
#[tokio::test]
async fn replay_loading_server_is_retried_until_it_answers() {
    let exchanges = fixture("loading");
    let busy = exchanges.iter().filter(|e| e.status == 503).count();
    assert!(busy >= 1, "{exchanges:#?}");
    assert_eq!(exchanges.len(), busy + 1);
    assert_eq!(exchanges.last().unwrap().status, 200);
    let want = recorded_text(exchanges.last().unwrap());

    let replay = Replay::start(exchanges.clone()).await.unwrap();
    let mut cfg = config(&replay.base_url());
    cfg.retries = Some(busy as u32);
    let exec = ModelExecutor::new(cfg.clone())
        .unwrap()
        .with_backoff(Duration::from_millis(10));
    let (outcome, events) = run(&exec, job("r1", ANSWER_PROMPT, None)).await;
    let Outcome::Completed { result_text, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(result_text, Some(want));
    assert_eq!(replay.requests().len(), busy + 1);
    assert_eq!(
        of_type(&events, "message")[0]["result_data"]["attempts"],
        busy + 1
    );

    let replay = Replay::start(exchanges).await.unwrap();
    cfg.base_url = replay.base_url();
    cfg.retries = Some(1);
    let exec = ModelExecutor::new(cfg)
        .unwrap()
        .with_backoff(Duration::from_millis(10));
    let (outcome, _) = run(&exec, job("r2", ANSWER_PROMPT, None)).await;
    assert_eq!(
        outcome,
        Outcome::Failed {
            error: "model_api: step 1: HTTP 503: Loading model (after 2 attempts)".into()
        }
    );
    assert_eq!(replay.requests().len(), 2);
}
