//! The main flows against a coordinator and a real runner (echo executor): create an
//! agent through the form (with validation errors), start a session from the UI, watch
//! events arrive live, lose the SSE connection (the coordinator is killed and
//! restarted) and see the timeline resume without gaps or repeats, stop a session;
//! and a follow-up on an idle session held by a protocol runner.

use serde_json::json;

use super::*;
use crate::driver::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_form_with_validation_errors() {
    let dir = tempdir();
    let coord = Coordinator::start(dir.path(), fast_env()).await;
    let url = coord.url.clone();
    let Some(b) = Browser::start(&url).await else {
        return;
    };

    // Empty states say what to do.
    b.goto("/ui/agents").await;
    b.wait_js(
        "document.querySelector('#agents .empty a[href=\"/ui/agents/new\"]')",
        "agents empty state",
    )
    .await;
    b.check_page("agents-empty").await;

    // Validation: the browser-side check puts the error next to the name field...
    b.goto("/ui/agents/new").await;
    b.fill("#name", "bad name!").await;
    b.fill("#description", "Echoes").await;
    b.click("#save").await;
    b.wait_js("!document.getElementById('name-err').hidden", "name error")
        .await;
    assert_eq!(
        b.js("document.getElementById('name').getAttribute('aria-invalid')")
            .await,
        "true"
    );
    assert_eq!(b.js("document.activeElement.id").await, "name");
    // ...and the server's refusal of a bad executor lands next to the executor field.
    b.fill("#name", "demo").await;
    b.fill("#tags", "echo, demo").await;
    b.fill("#executor", r#"{"kind": "teleport"}"#).await;
    b.click("#save").await;
    b.wait_js(
        "!document.getElementById('executor-err').hidden",
        "executor error",
    )
    .await;
    let msg = b
        .js("document.getElementById('executor-err').textContent")
        .await;
    assert!(msg.as_str().unwrap().contains("teleport"), "{msg}");
    assert_eq!(b.path().await, "/ui/agents/new", "stayed on the form");
    b.check_page("agent-form-errors").await;
    let (st, _) = call("GET", &format!("{url}/agents/demo"), None).await;
    assert_eq!(st, 404, "nothing was created");

    b.fill("#executor", "").await;
    b.fill("#system_prompt", "Be brief.").await;
    b.click("#save").await;
    b.wait_js("location.pathname === '/ui/agents/demo'", "agent page")
        .await;
    let (st, agent) = call("GET", &format!("{url}/agents/demo?raw=true"), None).await;
    assert_eq!(st, 200, "{agent}");
    assert_eq!(agent["tags"], json!(["echo", "demo"]));
    assert_eq!(agent["system_prompt"], "Be brief.");
    b.wait_js("document.querySelector('#agent dl')", "agent details")
        .await;
    b.check_page("agent").await;

    // Edit: fields come filled in; changes are saved; the name cannot change.
    b.click("a[href=\"/ui/agents/demo/edit\"]").await;
    b.wait_js(
        "document.getElementById('description').value === 'Echoes'",
        "filled form",
    )
    .await;
    assert_eq!(b.js("document.getElementById('name').readOnly").await, true);
    assert_eq!(
        b.js("document.getElementById('tags').value").await,
        "echo, demo"
    );
    b.fill("#description", "Echoes, edited").await;
    b.fill("#demands", r#"{"tags": ["gpu"]}"#).await;
    b.click("#save").await;
    b.wait_js(
        "location.pathname === '/ui/agents/demo'",
        "back on the agent page",
    )
    .await;
    let (_, agent) = call("GET", &format!("{url}/agents/demo?raw=true"), None).await;
    assert_eq!(agent["description"], "Echoes, edited");
    assert_eq!(agent["demands"]["tags"], json!(["gpu"]));
    assert_eq!(agent["system_prompt"], "Be brief.", "untouched fields kept");
    b.goto("/ui/agents").await;
    b.wait_js(
        "document.querySelector('tr[data-agent=\"demo\"]')",
        "agent row",
    )
    .await;
    b.check_page("agents").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_session_resume_after_a_dropped_feed_and_stop() {
    let dir = tempdir();
    let mut coord = Coordinator::start(dir.path(), fast_env()).await;
    let url = coord.url.clone();
    let Some(b) = Browser::start(&url).await else {
        return;
    };
    let _runner = Runner::start(&url, dir.path(), "r1", &[]).await;
    wait_runner(&url).await;
    let (st, a) = call(
        "POST",
        &format!("{url}/agents"),
        Some(json!({"name": "demo", "description": "Echoes", "tags": ["echo"]})),
    )
    .await;
    assert_eq!(st, 201, "{a}");

    // Start a session from the UI; events appear without a reload.
    b.goto("/ui/sessions/new?agent=demo").await;
    b.wait_js(
        "document.getElementById('agent').value === 'demo'",
        "agent preselected",
    )
    .await;
    b.check_page("session-new").await;
    let prompt = echo_prompt(json!({"echo_events": 40, "echo_delay_ms": 250}), "hello");
    b.fill("#prompt", &prompt).await;
    b.click("#start").await;
    let sid = b
        .wait_js(
            "location.pathname.startsWith('/ui/sessions/ses') && location.pathname.split('/')[3]",
            "session page",
        )
        .await
        .as_str()
        .unwrap()
        .to_string();
    b.js("window.__samePage = true").await;
    b.wait_js(
        "document.querySelectorAll('#timeline > li').length >= 3",
        "live events",
    )
    .await;
    b.wait_js(
        "document.getElementById('live').textContent === 'Live'",
        "live badge",
    )
    .await;

    // Kill the connection: the coordinator dies mid-run and comes back on the same port.
    coord.kill9().await;
    b.wait_js("AOF.stats.feedDrops >= 1", "the page noticing the drop")
        .await;
    coord.restart().await;
    wait_session(&url, &sid, "finished").await;
    let stored = event_ids(&url, &sid).await;
    // The raw view has a row per stored event (the folded one merges some).
    b.click("#tl-raw").await;
    b.wait_js(
        &format!(
            "document.querySelectorAll('#timeline > li').length === {}",
            stored.len()
        ),
        "every event in the timeline",
    )
    .await;
    assert_eq!(
        row_ids(&b).await,
        stored,
        "timeline = stored events: no gap, no repeat"
    );
    assert_eq!(b.js("window.__samePage === true").await, true, "no reload");
    assert!(
        b.js("AOF.stats.feedOpens").await.as_u64().unwrap() >= 3,
        "feeds reopened"
    );
    b.wait_js(
        "document.querySelector('#session-status .badge.finished')",
        "finished badge",
    )
    .await;
    b.wait_js(
        "!document.getElementById('followup').hidden",
        "follow-up box",
    )
    .await;
    b.check_page("session").await;

    // Stop a long session from its page.
    let long = echo_prompt(json!({"echo_events": 2000, "echo_delay_ms": 200}), "long");
    let (st, run) = call(
        "POST",
        &format!("{url}/runs"),
        Some(
            json!({"type": "start_session", "agent_name": "demo", "parameters": {"prompt": long}}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{run}");
    let sid2 = run["session_id"].as_str().unwrap().to_string();
    b.goto(&format!("/ui/sessions/{sid2}")).await;
    b.wait_js(
        "document.querySelectorAll('#timeline > li').length >= 2",
        "events of the long session",
    )
    .await;
    b.wait_js("!document.getElementById('stop').hidden", "stop button")
        .await;
    b.click("#stop").await;
    wait_session(&url, &sid2, "stopped").await;
    b.wait_js(
        "document.querySelector('#session-status .badge.stopped')",
        "stopped badge, live",
    )
    .await;
    b.wait_js(
        "document.querySelector('#timeline > li:last-child').textContent.includes('run stopped')",
        "run stopped event",
    )
    .await;

    // Lists: sessions (filtered by status), runs, runners, overview.
    b.goto("/ui/sessions?status=stopped").await;
    b.wait_js(
        &format!("document.querySelector('tr[data-session=\"{sid2}\"]')"),
        "stopped session listed",
    )
    .await;
    assert_eq!(
        b.count(&format!("tr[data-session=\"{sid}\"]")).await,
        0,
        "filter hides the finished one"
    );
    b.check_page("sessions").await;
    b.goto("/ui/runs").await;
    b.wait_js(
        "document.querySelectorAll('tr[data-run]').length === 2",
        "runs",
    )
    .await;
    b.check_page("runs").await;
    b.goto("/ui/runners").await;
    b.wait_js(
        "document.querySelector('tr[data-runner] .badge.online')",
        "online runner",
    )
    .await;
    b.check_page("runners").await;
    b.goto("/ui/").await;
    b.wait_js(
        "document.querySelector('#ov-sessions a.stat')",
        "session counts",
    )
    .await;
    b.wait_js("document.querySelector('#ov-rpm .bars')", "runs per minute")
        .await;
    b.wait_js(
        "document.querySelectorAll('#ov-activity li').length === 2",
        "recent activity",
    )
    .await;
    b.check_page("overview").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_up_on_an_idle_session() {
    let dir = tempdir();
    let coord = Coordinator::start(dir.path(), fast_env()).await;
    let url = coord.url.clone();
    let Some(b) = Browser::start(&url).await else {
        return;
    };
    let manual = ManualRunner::register(&url, &["manual"]).await;
    let sid = ManualRunner::start_session(&url, "first").await;
    let run = manual.claim().await;
    manual.report(&run, "started", json!({})).await;
    manual.message(&run, "waiting for you").await;
    manual
        .report(&run, "completed", json!({"session_status": "idle"}))
        .await;
    wait_session(&url, &sid, "idle").await;

    b.goto(&format!("/ui/sessions/{sid}")).await;
    b.wait_js(
        "document.querySelector('#session-status .badge.idle')",
        "idle badge",
    )
    .await;
    b.wait_js(
        "!document.getElementById('followup').hidden",
        "follow-up box",
    )
    .await;
    // An empty follow-up is refused next to the box.
    b.click("#followup-send").await;
    b.wait_js(
        "!document.getElementById('followup-err').hidden",
        "follow-up error",
    )
    .await;
    b.fill("#followup-text", "and now the second part").await;
    b.click("#followup-send").await;

    let resume = manual.claim().await;
    assert_eq!(resume["type"], "resume_session");
    assert_eq!(resume["session_id"], sid.as_str());
    assert_eq!(resume["parameters"]["prompt"], "and now the second part");
    manual.report(&resume, "started", json!({})).await;
    // A failed tool call: highlighted, its input and output collapsed until opened.
    let (st, e) = call_h(
        "POST",
        &format!("{url}/sessions/{sid}/events"),
        Some(
            json!({"event_type": "post_tool", "session_id": sid, "timestamp": aof_wire::now_ts(),
                    "tool_name": "grep", "tool_input": {"pattern": "needle"},
                    "tool_output": "no such file", "error": "exit status 2"}),
        ),
        &[
            ("x-aof-lease-token", resume["lease_token"].as_str().unwrap()),
            ("x-aof-run-id", resume["run_id"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(st, 201, "{e}");
    manual.message(&resume, "second answer").await;
    b.wait_js(
        "[...document.querySelectorAll('#timeline > li')].some(li => li.textContent.includes('second answer'))",
        "the answer to the follow-up, live",
    )
    .await;
    b.wait_js(
        "document.querySelector('#session-status .badge.running')",
        "running badge",
    )
    .await;
    assert_eq!(
        b.js("document.getElementById('followup-text').value").await,
        ""
    );
    let tool = "#timeline > li.ev.error";
    b.wait_js(
        &format!("document.querySelector('{tool}')"),
        "highlighted tool error",
    )
    .await;
    assert_eq!(
        b.js(&format!(
            "document.querySelectorAll('{tool} details[open]').length"
        ))
        .await,
        0
    );
    b.click(&format!("{tool} details summary")).await;
    b.wait_js(
        &format!(
            "document.querySelector('{tool} details[open] pre').textContent.includes('needle')"
        ),
        "tool input shown",
    )
    .await;

    // Result with usage and cost, in the run's card.
    let (st, e) = call_h(
        "POST",
        &format!("{url}/sessions/{sid}/events"),
        Some(json!({"event_type": "result", "session_id": sid, "timestamp": aof_wire::now_ts(),
                    "result_text": "all done",
                    "result_data": {"total_cost_usd": 0.0123, "usage": {"input_tokens": 10, "output_tokens": 5}}})),
        &[("x-aof-lease-token", resume["lease_token"].as_str().unwrap()),
          ("x-aof-run-id", resume["run_id"].as_str().unwrap())],
    )
    .await;
    assert_eq!(st, 201, "{e}");
    // The second run's card (the first run's ended idle, above it).
    let card = "[...document.querySelectorAll('#timeline > li.run-card')].pop()";
    b.wait_js(&format!("{card}.textContent.includes('$0.0123')"), "cost")
        .await;
    let result = b.js(&format!("{card}.textContent")).await;
    for want in ["all done", "Tokens in", "10", "Tokens out"] {
        assert!(
            result.as_str().unwrap().contains(want),
            "{want} in {result}"
        );
    }

    // A child session appears in the tree, live.
    let (st, child) = call(
        "POST",
        &format!("{url}/runs"),
        Some(
            json!({"type": "start_session", "parameters": {"prompt": "child"},
                    "parent_session_id": sid, "additional_demands": {"tags": ["nobody"]}}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{child}");
    let child = child["session_id"].as_str().unwrap().to_string();
    b.wait_js(
        &format!("document.querySelector('#children a[href=\"/ui/sessions/{child}\"]')"),
        "child in the tree",
    )
    .await;
    b.readme_screenshot().await;
    b.check_page("session-idle-followup").await;

    // Agents: disable, enable, delete behind a confirmation.
    let (st, a) = call(
        "POST",
        &format!("{url}/agents"),
        Some(json!({"name": "gone", "description": "to delete", "tags": ["x"]})),
    )
    .await;
    assert_eq!(st, 201, "{a}");
    b.goto("/ui/agents").await;
    let row = "tr[data-agent=\"gone\"]";
    b.wait_js(
        &format!("document.querySelector('{row} .badge.active')"),
        "active agent",
    )
    .await;
    b.click(&format!("{row} button[aria-label^=\"Disable\"]"))
        .await;
    b.wait_js(
        &format!("document.querySelector('{row} .badge.inactive')"),
        "disabled agent",
    )
    .await;
    assert_eq!(
        call("GET", &format!("{url}/agents/gone"), None).await.1["status"],
        "inactive"
    );
    b.click(&format!("{row} button[aria-label^=\"Enable\"]"))
        .await;
    b.wait_js(
        &format!("document.querySelector('{row} .badge.active')"),
        "enabled agent",
    )
    .await;
    b.click(&format!("{row} button[aria-label^=\"Delete\"]"))
        .await;
    b.wait_js(
        "document.querySelector('dialog[open]')",
        "confirmation dialog",
    )
    .await;
    b.assert_accessible("delete confirmation").await;
    b.click("#dlg-no").await;
    b.wait_js("!document.querySelector('dialog')", "dialog closed")
        .await;
    assert_eq!(
        call("GET", &format!("{url}/agents/gone"), None).await.0,
        200,
        "cancel keeps it"
    );
    b.click(&format!("{row} button[aria-label^=\"Delete\"]"))
        .await;
    b.click("#dlg-yes").await;
    b.wait_js(
        "document.querySelector('#agents .empty')",
        "empty list after delete",
    )
    .await;
    assert_eq!(
        call("GET", &format!("{url}/agents/gone"), None).await.0,
        404
    );
    b.assert_no_script_errors().await;

    // Runners: remove one behind a confirmation.
    b.goto("/ui/runners").await;
    let row = format!("tr[data-runner=\"{}\"]", manual.id);
    b.wait_js(&format!("document.querySelector('{row}')"), "runner row")
        .await;
    b.click(&format!("{row} button")).await;
    b.wait_js(
        "document.querySelector('dialog[open]')",
        "confirmation dialog",
    )
    .await;
    b.click("#dlg-yes").await;
    b.wait_js(
        "document.getElementById('banner').textContent.includes('deregistration')",
        "removal noted",
    )
    .await;
    // The runner learns it at its next poll and is gone.
    let (st, out) = call(
        "GET",
        &format!("{url}/runner/runs?runner_id={}", manual.id),
        None,
    )
    .await;
    assert_eq!((st, out), (200, json!({"deregistered": true})));
    b.goto("/ui/runners").await;
    b.wait_js(
        "document.querySelector('#runners .empty')",
        "no runners left",
    )
    .await;
    let (_, list) = call("GET", &format!("{url}/runners"), None).await;
    assert_eq!(list["runners"], json!([]));
    b.close().await;
}
