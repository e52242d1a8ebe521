//! The reference dashboard (its vite build, served by `RefDashboard`) in chromium against
//! our coordinator. The same steps against the reference coordinator are the control: the
//! same visible things are asserted there, so a failure on ours is ours. Underneath, the
//! SSE headers and frames the dashboard reads are compared with the reference's.
//!
//! A dashboard on another origin reads the API only if the coordinator lists that origin
//! in `CORS_ORIGINS` (ours: same origin by default; the reference: `*`), so ours gets it.

use serde_json::{json, Value};

use crate::{
    driver::Browser,
    harness::{call, tempdir, wait_for, Coordinator, Runner, Sse},
    reference::{free_port, RefCoordinator, RefDashboard, RefPaths, RefRunner},
};

const AGENT: &str = "dash-helper";
const AGENT_DESCRIPTION: &str = "Echoes for the dashboard test";

/// Our coordinator with the dashboard served against it: the coordinator's port is
/// chosen first so the dashboard's origin can be listed in `CORS_ORIGINS` (or not).
async fn ours(p: &RefPaths, dir: &std::path::Path, cors: bool) -> (Coordinator, RefDashboard) {
    let port = free_port();
    let dash = RefDashboard::serve(p, &format!("http://127.0.0.1:{port}")).await;
    let env = if cors {
        vec![("CORS_ORIGINS".to_string(), dash.url.clone())]
    } else {
        Vec::new()
    };
    (Coordinator::start_at(dir, port, env).await, dash)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_dashboard_on_our_coordinator() {
    let Some(p) = RefPaths::get() else { return };
    let dir = tempdir();
    let (coord, dash) = ours(&p, dir.path(), true).await;
    let runner = Runner::start(&coord.url, dir.path(), "dash-runner", &[]).await;
    let Some(b) = Browser::start(&dash.url).await else {
        return;
    };
    // Our echo executor answers with the prompt, so the chat shows the reply.
    exercise(&b, &coord.url, "ours", &runner.child, true).await;
    b.close().await;
}

/// The control: the same page and steps against the reference's own coordinator and runner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_dashboard_on_reference_coordinator_control() {
    let Some(p) = RefPaths::get() else { return };
    let dir = tempdir();
    let coord = RefCoordinator::start(&p, dir.path()).await;
    let runner = RefRunner::start(&p, &coord.url, dir.path(), "echo-executor", &[]).await;
    runner.registered().await;
    let dash = RefDashboard::serve(&p, &coord.url).await;
    let Some(b) = Browser::start(&dash.url).await else {
        return;
    };
    // The reference's echo executor reports its reply only as the run's result, which
    // its chat does not show (it shows `result_data` only), so no reply is awaited.
    exercise(&b, &coord.url, "reference", &runner.child, false).await;
    b.close().await;
}

/// What a user does: sees the connection, the sessions and agents, a session's events
/// arriving live, and starts a run from the chat. `api` is the coordinator's URL;
/// `runner` the process of its only runner.
async fn exercise(
    b: &Browser,
    api: &str,
    label: &str,
    runner: &tokio::process::Child,
    shows_reply: bool,
) {
    let (st, body) = call(
        "POST",
        &format!("{api}/agents"),
        Some(
            json!({"name": AGENT, "description": AGENT_DESCRIPTION, "system_prompt": "Be brief."}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{label}: create the agent: {body}");
    let seeded = start_and_finish(api, "seeded through the API").await;

    open(b, "/").await;
    wait_connected(b, label).await;
    b.screenshot(&format!("refdash-{label}-home")).await;

    // Sessions: the one made through the API, with its agent.
    open(b, "/sessions").await;
    wait_connected(b, label).await;
    b.find(&session_card(&seeded)).await;
    b.wait_js(&contains(AGENT), "the session's agent name")
        .await;
    b.screenshot(&format!("refdash-{label}-sessions")).await;

    // Agents: name and description in the table.
    open(b, "/agents").await;
    b.wait_js(
        &format!(
            "[...document.querySelectorAll('td')].some(td => td.innerText.trim() === {}) && {}",
            json!(AGENT),
            contains(AGENT_DESCRIPTION)
        ),
        "the agent in the agents table",
    )
    .await;
    b.screenshot(&format!("refdash-{label}-agents")).await;

    // A session's events: the stored ones, then one posted while the page is open
    // appears without a reload (the marker set on the page survives).
    open(b, "/sessions").await;
    b.click(&session_card(&seeded)).await;
    b.wait_js(&contains("Run Started"), "the session's stored events")
        .await;
    b.js("window.__refdashSamePage = true").await;
    let live = format!("live event for the {label} dashboard");
    let (st, body) = call(
        "POST",
        &format!("{api}/sessions/{seeded}/events"),
        Some(json!({
            "event_type": "message",
            "session_id": seeded,
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "role": "assistant",
            "content": [{"type": "text", "text": live}],
        })),
    )
    .await;
    assert_eq!(st, 201, "{label}: post an event: {body}");
    b.wait_js(
        &format!("{} && window.__refdashSamePage === true", contains(&live)),
        "the live event in the open timeline",
    )
    .await;
    b.screenshot(&format!("refdash-{label}-live-event")).await;

    // A run started from the chat: pick the agent, type, send.
    open(b, "/chat").await;
    wait_connected(b, label).await;
    click_button_text(b, "Generic Agent").await;
    click_button_text(b, AGENT).await;
    let prompt = format!("started from the {label} dashboard");
    b.fill("textarea", &prompt).await;
    b.wait_js(
        "document.querySelector(\"button[title='Send message']\")?.disabled === false",
        "the send button enabled",
    )
    .await;
    // The page learns its new session's id only from the answer to its POST /runs, and
    // drops the stream's events of a session it does not know. Our coordinator hands a new
    // run to a waiting runner at once (the reference's checks every 500 ms), so on a loaded
    // machine the whole echo reached the page before that answer and was dropped. The
    // runner is held until the page knows its session: as a user sees it, a slow runner.
    let held = Held::stop(runner);
    b.click("button[title='Send message']").await;
    let run = wait_for("the run started from the chat, in the API", || async {
        let (_, b) = call("GET", &format!("{api}/runs"), None).await;
        b["runs"]
            .as_array()?
            .iter()
            .find(|r| r["parameters"]["prompt"] == prompt.as_str())
            .cloned()
    })
    .await;
    assert_eq!(run["agent_name"], AGENT, "{label}: {run}");
    assert_eq!(run["type"], "start_session", "{label}: {run}");
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let sid = run["session_id"].as_str().unwrap().to_string();
    // The page shows its stop button once it holds the session's id (and is loading).
    b.wait_js(
        "!!document.querySelector(\"button[title='Stop agent']\")",
        "the chat holding its session (the stop button)",
    )
    .await;
    drop(held);
    wait_run_completed(api, &run_id).await;
    b.wait_js(&contains(&prompt), "the prompt in the chat")
        .await;
    if shows_reply {
        // The echo, in an assistant message (the user's own is `.markdown-content-user`).
        b.wait_js(
            &format!(
                "[...document.querySelectorAll('.markdown-content')].some(m => m.innerText.includes({}))",
                json!(prompt)
            ),
            "the echoed reply in the chat",
        )
        .await;
    }
    b.screenshot(&format!("refdash-{label}-chat")).await;
    open(b, "/sessions").await;
    b.find(&session_card(&sid)).await;
    b.screenshot(&format!("refdash-{label}-sessions-after-chat"))
        .await;
}

/// Without `CORS_ORIGINS` (our default: same origin only) the browser hides our answers
/// from a dashboard on another origin: it shows "Disconnected" and no sessions, and our
/// log names that origin and the setting to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_dashboard_without_cors_origins_is_refused_and_the_log_says_why() {
    let Some(p) = RefPaths::get() else { return };
    let dir = tempdir();
    let (coord, dash) = ours(&p, dir.path(), false).await;
    let Some(b) = Browser::start(&dash.url).await else {
        return;
    };
    open(&b, "/sessions").await;
    b.wait_js(
        &contains("Failed to load sessions"),
        "the dashboard's error",
    )
    .await;
    b.wait_js(&contains("No sessions found"), "an empty session list")
        .await;
    b.wait_js(
        "[...document.querySelectorAll('header span')].some(s => s.textContent.trim() === 'Disconnected')",
        "the header saying Disconnected",
    )
    .await;
    b.screenshot("refdash-ours-no-cors").await;
    let line = wait_for("the coordinator's warning about the origin", || async {
        coord
            .log()
            .lines()
            .find(|l| l.contains("WARN") && l.contains(&dash.url))
            .map(str::to_string)
    })
    .await;
    assert!(line.contains("CORS_ORIGINS"), "{line}");
    b.close().await;
}

/// The headers and frames the dashboard's stream reads, from ours and from the reference,
/// for the same steps: the same event names in the same order, and every field the
/// reference sends present in ours with the same JSON type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_headers_and_frames_match_the_reference() {
    let Some(p) = RefPaths::get() else { return };
    let dir = tempdir();
    let reference = RefCoordinator::start(&p, dir.path()).await;
    let our = Coordinator::start(dir.path(), Vec::new()).await;
    let theirs = stream_steps(&reference.url).await;
    let mine = stream_steps(&our.url).await;
    for (k, v) in &theirs.headers {
        assert_eq!(mine.headers.get(k), Some(v), "header {k}");
    }
    let names = |s: &Steps| s.frames.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>();
    assert_eq!(names(&mine), names(&theirs), "frame names in order");
    for ((event, ours), (_, refs)) in mine.frames.iter().zip(&theirs.frames) {
        let (ours, refs) = (fields(ours, ""), fields(refs, ""));
        for (path, kind) in &refs {
            // A null in one and a value in the other is data, not shape.
            let got = ours.get(path);
            assert!(
                got == Some(kind) || got == Some(&"null") || (*kind == "null" && got.is_some()),
                "{event} frame: field {path} is {kind} in the reference, {got:?} in ours"
            );
        }
    }
}

struct Steps {
    headers: std::collections::BTreeMap<String, String>,
    /// (event name, data) in the order received.
    frames: Vec<(String, Value)>,
}

/// Opens the stream, makes an agent and a session (no runner: the run stays pending),
/// posts an event and changes the session's metadata; returns what the stream said.
async fn stream_steps(api: &str) -> Steps {
    let r = crate::harness::client()
        .get(format!("{api}/sse/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // The headers the dashboard's browser acts on.
    let headers = ["content-type", "cache-control", "x-accel-buffering"]
        .iter()
        .filter_map(|k| {
            let v = r.headers().get(*k)?.to_str().ok()?;
            // `; charset=utf-8` (the reference's) changes nothing for an EventSource.
            Some((k.to_string(), v.split(';').next()?.trim().to_string()))
        })
        .collect();
    drop(r);
    let mut sse = Sse::open(&format!("{api}/sse/sessions"), None).await;
    let (st, body) = call(
        "POST",
        &format!("{api}/agents"),
        Some(
            json!({"name": AGENT, "description": AGENT_DESCRIPTION, "system_prompt": "Be brief."}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let (st, run) = call(
        "POST",
        &format!("{api}/runs"),
        Some(json!({"type": "start_session", "agent_name": AGENT, "parameters": {"prompt": "p"}})),
    )
    .await;
    assert_eq!(st, 201, "{run}");
    let sid = run["session_id"].as_str().unwrap();
    let event = json!({
        "event_type": "message", "session_id": sid,
        "timestamp": chrono::Utc::now().to_rfc3339(), "role": "assistant",
        "content": [{"type": "text", "text": "hello"}],
    });
    let (st, body) = call("POST", &format!("{api}/sessions/{sid}/events"), Some(event)).await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = call(
        "PATCH",
        &format!("{api}/sessions/{sid}/metadata"),
        Some(json!({"hostname": "dash-host"})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let mut frames = Vec::new();
    while frames.len() < 4 {
        let f = sse.next().await.expect("a frame");
        frames.push((f.event, serde_json::from_str(&f.data).expect("JSON data")));
    }
    Steps { headers, frames }
}

/// Every field path of `v` with its JSON type (`sessions[].status` → "string").
fn fields(v: &Value, path: &str) -> std::collections::BTreeMap<String, &'static str> {
    let mut out = std::collections::BTreeMap::new();
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(a) => {
            for x in a {
                out.extend(fields(x, &format!("{path}[]")));
            }
            "array"
        }
        Value::Object(o) => {
            for (k, x) in o {
                out.extend(fields(x, &format!("{path}.{k}")));
            }
            "object"
        }
    };
    out.insert(path.to_string(), kind);
    out
}

/// A runner process stopped (SIGSTOP) until this is dropped (SIGCONT): it takes no run and
/// sends nothing meanwhile; a run it is handed waits in its socket.
struct Held(nix::unistd::Pid);

impl Held {
    fn stop(child: &tokio::process::Child) -> Held {
        let pid = nix::unistd::Pid::from_raw(child.id().expect("the runner is running") as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
        Held(pid)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
    }
}

/// Starts a session of the agent through the API and waits until its run completed.
async fn start_and_finish(api: &str, prompt: &str) -> String {
    let (st, run) = call(
        "POST",
        &format!("{api}/runs"),
        Some(
            json!({"type": "start_session", "agent_name": AGENT, "parameters": {"prompt": prompt}}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{run}");
    wait_run_completed(api, run["run_id"].as_str().unwrap()).await;
    run["session_id"].as_str().unwrap().to_string()
}

async fn wait_run_completed(api: &str, run_id: &str) {
    wait_for(&format!("run {run_id} completed"), || async {
        let (_, r) = call("GET", &format!("{api}/runs/{run_id}"), None).await;
        (r["status"] == "completed").then_some(())
    })
    .await
}

/// A page of the dashboard (a full load; it is a single-page app on every path).
async fn open(b: &Browser, path: &str) {
    b.client
        .goto(&format!("{}{path}", b.base))
        .await
        .unwrap_or_else(|e| panic!("goto {path}: {e}"));
    b.wait_js(
        "document.readyState === 'complete' && !!document.querySelector('header')",
        "the dashboard's header",
    )
    .await;
}

async fn wait_connected(b: &Browser, label: &str) {
    b.wait_js(
        "[...document.querySelectorAll('header span')].some(s => s.textContent.trim() === 'Connected')",
        &format!("the header saying Connected ({label})"),
    )
    .await;
}

fn contains(text: &str) -> String {
    format!("document.body.innerText.includes({})", json!(text))
}

/// A session's card in the list (its title carries the full id).
fn session_card(sid: &str) -> String {
    format!("h3[title='{sid}']")
}

/// Clicks the first visible button whose text is `text` (the dashboard's dropdowns have
/// no other handle), once it exists.
async fn click_button_text(b: &Browser, text: &str) {
    let find = format!(
        "[...document.querySelectorAll('button')].find(x => x.offsetParent !== null && x.innerText.trim() === {})",
        json!(text)
    );
    b.wait_js(&format!("!!({find})"), &format!("a button '{text}'"))
        .await;
    b.js(&format!("({find}).click() || true")).await;
}
