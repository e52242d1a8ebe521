use super::*;

async fn post(server: &ReplayServer, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", server.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// (event name, data) of an SSE body.
fn sse(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|frame| {
            let mut name = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(v).unwrap());
                }
            }
            Some((name?, data?))
        })
        .collect()
}

fn request(user: Value, stream: bool) -> Value {
    json!({
        "model": "claude-test",
        "stream": stream,
        "system": [{"type": "text", "text": "You are Claude Code."}, {"type": "text", "text": "Be brief."}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "first question"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {"role": "user", "content": user},
        ],
    })
}

#[tokio::test]
async fn streams_scripted_tool_use_in_the_services_event_order() {
    let server = ReplayServer::start([
        Rule::when("make a file").reply([
            Block::text("I'll run a command."),
            Block::tool_use("Bash", json!({"command": "echo hi > proof.txt"})),
        ]),
        Rule::otherwise().reply([Block::text("done")]),
    ])
    .await
    .unwrap();
    let resp = post(
        &server,
        "/v1/messages?beta=true",
        request(json!("please make a file"), true),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse(&resp.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    // Order: start, ping, each block start/deltas/stop, message_delta, stop.
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"]);
    let starts: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| &d["content_block"])
        .collect();
    assert_eq!(starts[0]["type"], "text");
    assert_eq!(starts[1]["type"], "tool_use");
    assert_eq!(starts[1]["name"], "Bash");
    assert!(starts[1]["id"].as_str().unwrap().starts_with("toolu_01"));
    // The deltas put the tool input back together exactly.
    let partial: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&partial).unwrap(),
        json!({"command": "echo hi > proof.txt"})
    );
    let text: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "I'll run a command.");
    let (_, start) = &events[0];
    assert!(start["message"]["id"]
        .as_str()
        .unwrap()
        .starts_with("msg_01"));
    assert_eq!(start["message"]["model"], "claude-test");
    assert!(start["message"]["usage"]["input_tokens"].as_u64().unwrap() > 10);
    let (_, delta) = &events[events.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);

    // The tool result comes back: the fallback answers and ends the turn.
    let resp = post(
        &server,
        "/v1/messages",
        request(
            json!([{"type": "tool_result", "tool_use_id": "toolu_x", "content": "hi written"}]),
            false,
        ),
    )
    .await;
    let msg: Value = resp.json().await.unwrap();
    assert_eq!(msg["content"], json!([{"type": "text", "text": "done"}]));
    assert_eq!(msg["stop_reason"], "end_turn");

    let turns = server.turns();
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[0].query.as_deref(), Some("beta=true"));
    assert_eq!(turns[0].system_text(), "You are Claude Code.\nBe brief.");
    assert_eq!(turns[0].latest_user_text(), "please make a file");
    assert_eq!(turns[0].tool_names(), ["Bash"]);
    assert_eq!(
        turns[1].tool_results(),
        [("toolu_x".to_string(), "hi written".to_string(), false)]
    );
    assert!(turns[1]
        .conversation_text()
        .starts_with("first question\nok\n"));
}

#[tokio::test]
async fn rules_match_in_order_with_limited_uses() {
    let server = ReplayServer::start([
        Rule::when("spawn")
            .reply([Block::tool_use(
                "mcp__agent-orchestrator__start_agent_session",
                json!({"agent_name": "child", "prompt": "p"}),
            )])
            .times(2),
        Rule::when("spawn").reply([Block::text("spawned enough")]),
    ])
    .await
    .unwrap();
    let mut names = Vec::new();
    for _ in 0..3 {
        let msg: Value = post(&server, "/v1/messages", request(json!("spawn"), false))
            .await
            .json()
            .await
            .unwrap();
        names.push(msg["content"][0]["name"].clone());
        if msg["content"][0]["type"] == "tool_use" {
            assert_eq!(msg["content"][0]["input"]["agent_name"], "child");
            assert_eq!(msg["stop_reason"], "tool_use");
        }
    }
    assert_eq!(
        names,
        [
            json!("mcp__agent-orchestrator__start_agent_session"),
            json!("mcp__agent-orchestrator__start_agent_session"),
            Value::Null
        ]
    );
    // Ids are unique per reply.
    let ids: Vec<Value> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            let m: Value = post(&server, "/v1/messages", request(json!("x"), false))
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(m["content"][0]["text"], NO_RULE_TEXT);
            v.push(m["id"].clone());
        }
        v
    };
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn side_calls_count_tokens_and_bad_requests() {
    let server =
        ReplayServer::start([Rule::otherwise().reply([Block::tool_use("Bash", json!({}))])])
            .await
            .unwrap();
    // No tools: a side call, answered with text, the rule untouched.
    let mut side = request(json!("title please"), false);
    side.as_object_mut().unwrap().remove("tools");
    let msg: Value = post(&server, "/v1/messages", side)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(msg["content"][0]["text"], SIDE_CALL_TEXT);

    let resp = post(
        &server,
        "/v1/messages/count_tokens",
        request(json!("x"), false),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let n: Value = resp.json().await.unwrap();
    assert!(n["input_tokens"].as_u64().unwrap() > 0);

    let resp = post(&server, "/v1/messages", json!({"model": "m"})).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["type"], "invalid_request_error");

    let resp = reqwest::Client::new()
        .post(format!("{}/v1/messages", server.base_url()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let resp = post(&server, "/v1/other", json!({})).await;
    assert_eq!(resp.status(), 404);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["type"], "not_found_error");

    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/v1/messages",
            "/v1/messages/count_tokens",
            "/v1/messages",
            "/v1/messages",
            "/v1/other"
        ]
    );
    assert!(server.turns().is_empty());
}
