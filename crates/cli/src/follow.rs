//! Following a session over SSE until it ends, shared by `aof run --follow` and
//! `aof sessions events --follow`. Reconnects with `Last-Event-ID` when the stream
//! breaks (a coordinator restart loses nothing). Prints events to stdout; progress
//! notes go to stderr.

use std::time::Duration;

use serde_json::Value;

use crate::{
    client::{seg, Api},
    sse_client::{self, Frame},
};

/// How a followed session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Finished,
    Failed,
    Stopped,
}

impl End {
    /// From a session status; `None` while it is still going.
    pub fn from_status(status: &str) -> Option<End> {
        match status {
            "finished" | "idle" => Some(End::Finished),
            "failed" => Some(End::Failed),
            "stopped" => Some(End::Stopped),
            _ => None,
        }
    }
}

/// Where following starts.
#[derive(Debug, Clone)]
pub enum From {
    /// A session just created: its whole history. A coordinator that does not replay
    /// (the AOF reference) sends nothing of a run that ended before the stream was
    /// attached, so a session already ended by then is printed from the store.
    Start,
    /// Replay after this feed cursor ("0": the session's whole history); the first
    /// terminal session status seen ends the follow.
    Cursor(String),
    /// Print the stored events, then follow live unless the session has already ended
    /// (for sessions that may have been resumed: an old `finished` must not end it).
    Snapshot,
}

/// Text of streamed `message_delta` events printed on the current line, which the
/// assistant `message` that completes them then does not repeat. Only the printing
/// thread touches it; a lock, not a `RefCell`, because printing may move threads.
static STREAMED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn text_of(ev: &Value) -> String {
    ev["content"]
        .as_array()
        .map(|b| b.iter().filter_map(|c| c["text"].as_str()).collect())
        .unwrap_or_default()
}

/// Prints one event (a stored event object) as a line; streamed text (`message_delta`)
/// appears as it comes, on one `[assistant]` line.
pub fn print_event(ev: &Value, json: bool) {
    if json {
        println!("{ev}");
        return;
    }
    let kind = ev["event_type"].as_str().unwrap_or("?");
    let mut streamed = STREAMED.lock().unwrap_or_else(|e| e.into_inner());
    if kind == "message_delta" {
        let text = text_of(ev);
        let line = streamed.get_or_insert_with(|| {
            print!("[{}] ", ev["role"].as_str().unwrap_or("assistant"));
            String::new()
        });
        line.push_str(&text);
        print!("{text}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        return;
    }
    let shown = streamed.take();
    if shown.is_some() {
        println!();
    }
    drop(streamed);
    match kind {
        "message" => {
            let text = text_of(ev);
            let role = ev["role"].as_str().unwrap_or("?");
            // Already streamed, or a step that only calls tools (shown as pre_tool).
            if shown.as_deref() == Some(text.as_str()) || (role == "assistant" && text.is_empty()) {
                return;
            }
            println!("[{role}] {text}");
        }
        "result" => println!("[result] {}", ev["result_text"].as_str().unwrap_or("")),
        "run_failed" => println!("[run_failed] {}", ev["error"].as_str().unwrap_or("")),
        "stderr" => println!("[stderr] {}", ev["error"].as_str().unwrap_or("")),
        "pre_tool" => println!(
            "[pre_tool] {} {}",
            ev["tool_name"].as_str().unwrap_or("?"),
            clip(&ev["tool_input"])
        ),
        "post_tool" => match ev["error"].as_str() {
            Some(e) => println!(
                "[post_tool] {} error: {}",
                ev["tool_name"].as_str().unwrap_or("?"),
                clip(&Value::String(e.to_string()))
            ),
            None => println!(
                "[post_tool] {} → {}",
                ev["tool_name"].as_str().unwrap_or("?"),
                clip(&ev["tool_output"])
            ),
        },
        other => println!("[{other}]"),
    }
}

/// A value on one line, at most ~200 characters (tool inputs and outputs can be long).
fn clip(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let one_line = s.replace('\n', "⏎");
    match one_line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// What one frame tells the follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Nothing,
    /// A run ended (its `run_completed`/`run_failed`/`run_stopped` event): the session
    /// may have ended without a status change to announce it (a resumed session idle
    /// before and after the turn), so its status is read.
    RunEnded,
    Ended(End),
}

/// Handles one frame.
fn on_frame(frame: &Frame, json: bool) -> Seen {
    let data: Value = serde_json::from_str(&frame.data).unwrap_or_default();
    match frame.event.as_str() {
        "event" => {
            print_event(&data["data"], json);
            match data["data"]["event_type"].as_str() {
                Some("run_completed" | "run_failed" | "run_stopped") => Seen::RunEnded,
                _ => Seen::Nothing,
            }
        }
        "session_updated" | "session_created" => {
            match End::from_status(data["session"]["status"].as_str().unwrap_or("")) {
                Some(end) => Seen::Ended(end),
                None => Seen::Nothing,
            }
        }
        "run_failed" if !json => {
            println!("[run_failed] {}", data["error"].as_str().unwrap_or(""));
            Seen::Nothing
        }
        _ => Seen::Nothing,
    }
}

/// The feed cursor now, and the session's status at that cursor (from the `init` frame).
pub async fn head(api: &Api, session_id: &str) -> anyhow::Result<(String, Option<String>)> {
    let url = api.url(&format!(
        "/sse/sessions?session_id={}&include_init=true",
        seg(session_id)
    ));
    let mut got = None;
    sse_client::follow(&api.http, &url, None, |frame| {
        if frame.event == "init" {
            let data: Value = serde_json::from_str(&frame.data).unwrap_or_default();
            let status = data["sessions"]
                .as_array()
                .and_then(|s| s.first())
                .and_then(|s| s["status"].as_str())
                .map(str::to_string);
            got = Some((frame.id.clone().unwrap_or_else(|| "0".into()), status));
            return false;
        }
        true
    })
    .await?;
    got.ok_or_else(|| anyhow::anyhow!("the coordinator's event stream sent no init frame"))
}

/// With the stream attached: if the session has ended already, prints its stored events
/// and says how it ended.
async fn ended_before_attach(
    api: &Api,
    session_id: &str,
    json: bool,
) -> anyhow::Result<Option<End>> {
    let status = api
        .get(&format!("/sessions/{}/status", seg(session_id)))
        .await?;
    let Some(end) = End::from_status(status["status"].as_str().unwrap_or("")) else {
        return Ok(None);
    };
    let events = api
        .get(&format!("/sessions/{}/events", seg(session_id)))
        .await?;
    for ev in events["events"].as_array().into_iter().flatten() {
        print_event(ev, json);
    }
    Ok(Some(end))
}

/// Follows `session_id` until it ends; see [`From`].
pub async fn follow_session(
    api: &Api,
    session_id: &str,
    from: From,
    json: bool,
) -> anyhow::Result<End> {
    let mut check_on_attach = matches!(from, From::Start);
    let mut last = match from {
        From::Start => "0".to_string(),
        From::Cursor(c) => c,
        From::Snapshot => {
            let (cursor, status) = head(api, session_id).await?;
            let events = api
                .get(&format!("/sessions/{}/events", seg(session_id)))
                .await?;
            let done = status.as_deref().and_then(End::from_status);
            let upto: i64 = cursor.parse().unwrap_or(i64::MAX);
            for ev in events["events"].as_array().into_iter().flatten() {
                // Later events arrive on the stream; an ended session prints them all.
                if done.is_some() || ev["id"].as_i64().is_none_or(|id| id <= upto) {
                    print_event(ev, json);
                }
            }
            if let Some(end) = done {
                return Ok(end);
            }
            cursor
        }
    };
    let url = api.url(&format!(
        "/sse/sessions?session_id={}&include_init=false",
        seg(session_id)
    ));
    let mut delay = Duration::from_millis(100);
    loop {
        let mut seen = Seen::Nothing;
        let from = last.clone();
        let res = match sse_client::open(&api.http, &url, Some(&from)).await {
            Ok(stream) => {
                if std::mem::take(&mut check_on_attach) {
                    if let Some(end) = ended_before_attach(api, session_id, json).await? {
                        return Ok(end);
                    }
                }
                sse_client::read(stream, |frame| {
                    if let Some(id) = &frame.id {
                        last = id.clone();
                    }
                    seen = on_frame(&frame, json);
                    seen == Seen::Nothing
                })
                .await
            }
            Err(e) => Err(e),
        };
        match seen {
            Seen::Ended(e) => return Ok(e),
            Seen::RunEnded => {
                let status = api
                    .get(&format!("/sessions/{}/status", seg(session_id)))
                    .await?;
                if let Some(e) = End::from_status(status["status"].as_str().unwrap_or("")) {
                    return Ok(e);
                }
                // Still going (another run follows): read on from the same cursor.
                continue;
            }
            Seen::Nothing => {}
        }
        match res {
            Ok(_) => eprintln!("aof: stream closed; reconnecting from event {last}"),
            Err(e) => eprintln!("aof: stream interrupted ({e}); reconnecting from event {last}"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(3));
    }
}

/// Follows with an optional deadline; prints how it ended. Exit 0 only if it finished.
pub async fn follow_to_exit(
    api: &Api,
    session_id: &str,
    from: From,
    json: bool,
    timeout: Option<f64>,
) -> anyhow::Result<u8> {
    let follow = follow_session(api, session_id, from, json);
    let end = match timeout {
        Some(t) => match tokio::time::timeout(Duration::from_secs_f64(t), follow).await {
            Ok(r) => r?,
            Err(_) => {
                eprintln!("aof: gave up after {t}s; session {session_id} is still going");
                return Ok(1);
            }
        },
        None => follow.await?,
    };
    eprintln!("session {session_id}: {end:?}");
    Ok(if end == End::Finished { 0 } else { 1 })
}
