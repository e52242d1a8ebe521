//! Approvals in the dashboard: a tool call waiting for a person appears live in the
//! session timeline with its input and Approve / Deny, the nav counts it, the sessions
//! page filters on `waiting_approval`; deciding in the page is what the API then shows.

use serde_json::{json, Value};

use super::*;
use crate::driver::Browser;

async fn leaves_waiting(url: &str, sid: &str) {
    wait_for("the session to leave waiting_approval", || async {
        let st = session_status(url, sid).await;
        (!st.is_empty() && st != "waiting_approval").then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_and_deny_from_the_timeline() {
    let dir = tempdir();
    // Default lease terms: the protocol runner below sends no heartbeats.
    let coord = Coordinator::start(dir.path(), Vec::new()).await;
    let url = coord.url.clone();
    let Some(b) = Browser::start(&url).await else {
        return;
    };
    let manual = ManualRunner::register(&url, &["manual"]).await;
    let sid = ManualRunner::start_session(&url, "make a file").await;
    let run = manual.claim().await;
    manual.report(&run, "started", json!({})).await;
    manual.message(&run, "I will create the file now").await;

    b.goto(&format!("/ui/sessions/{sid}")).await;
    b.wait_js(
        "document.getElementById('live').textContent === 'Live'",
        "live feed",
    )
    .await;
    b.wait_js(
        "document.getElementById('timeline').textContent.includes('I will create the file now')",
        "the stored message",
    )
    .await;
    assert_eq!(
        b.js("document.getElementById('nav-approvals-count').hidden")
            .await,
        true,
        "no count while nothing waits"
    );

    // The runner asks; the page shows it without a reload.
    b.js("window.__samePage = true").await;
    let first = ask(&url, &sid, &run, "touch /tmp/aof-approval-demo", "k1").await;
    let li = format!("#timeline li.ev.approval.pending[data-approval=\"{first}\"]");
    b.wait_js(
        &format!("document.querySelector('{li} form')"),
        "the pending approval, live",
    )
    .await;
    let text = b
        .js(&format!("document.querySelector('{li}').textContent"))
        .await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("Bash") && text.contains("touch /tmp/aof-approval-demo"),
        "tool and input shown: {text}"
    );
    b.wait_js(
        "document.querySelector('#session-status .badge.waiting_approval')",
        "waiting_approval badge, live",
    )
    .await;
    b.wait_js(
        "document.getElementById('nav-approvals-count').dataset.count === '1' \
         && !document.getElementById('nav-approvals-count').hidden",
        "the nav count",
    )
    .await;
    let name = b
        .js("document.getElementById('nav-approvals').textContent.replace(/\\s+/g, ' ').trim()")
        .await;
    assert_eq!(name, "Approvals 1 pending");
    // Its message field is labelled; its buttons are reachable.
    assert_eq!(
        b.js(&format!(
            "document.querySelector('label[for=\"' + document.querySelector('{li} textarea').id + '\"]').textContent"
        ))
        .await,
        "Message (optional)"
    );
    b.js(&format!(
        "document.querySelector('{li}').scrollIntoView({{block: 'nearest'}})"
    ))
    .await;
    b.readme_picture("approvals").await;
    b.check_page("approval-pending").await;

    // Approve with a message: the API shows who decided; the session works on.
    b.fill(&format!("{li} textarea"), "fine, go ahead").await;
    b.click(&format!("{li} button[data-decision=\"approve\"]"))
        .await;
    let done = format!("#timeline li[data-approval=\"{first}\"] .decision.approved");
    b.wait_js(
        &format!("document.querySelector('{done}')"),
        "approved in the page",
    )
    .await;
    assert_eq!(
        b.js(&format!(
            "document.activeElement === document.querySelector('{done}')"
        ))
        .await,
        true,
        "focus stays on the decided approval"
    );
    let a = approval(&url, &first).await;
    assert_eq!(a["status"], "approved", "{a}");
    assert_eq!(a["message"], "fine, go ahead", "{a}");
    let by = a["decided_by"]
        .as_str()
        .expect("decided_by set")
        .to_string();
    assert!(!by.is_empty());
    leaves_waiting(&url, &sid).await;
    b.wait_js(
        "!document.querySelector('#session-status .badge.waiting_approval')",
        "the session badge moves on, live",
    )
    .await;
    b.wait_js(
        "[...document.querySelectorAll('#timeline li.ev.approval')].some(li => li.textContent.includes('approval approved'))",
        "the approval_resolved event",
    )
    .await;
    b.wait_js(
        &format!(
            "document.querySelector('{done}').textContent.includes({})",
            json!(by)
        ),
        "who decided",
    )
    .await;
    b.wait_js(
        "document.getElementById('nav-approvals-count').hidden",
        "no count left",
    )
    .await;
    assert_eq!(b.js("window.__samePage === true").await, true, "no reload");
    b.check_page("approval-decided").await;

    // A second call waits: the sessions page's filter finds the session.
    let second = ask(&url, &sid, &run, "rm -rf /tmp/aof-approval-demo", "k2").await;
    wait_session(&url, &sid, "waiting_approval").await;
    b.goto("/ui/sessions?status=waiting_approval").await;
    b.wait_js(
        &format!("document.querySelector('tr[data-session=\"{sid}\"] .badge.waiting_approval')"),
        "the waiting session listed",
    )
    .await;
    assert_eq!(
        b.js("document.getElementById('f-status').value").await,
        "waiting_approval"
    );
    b.check_page("sessions-waiting-approval").await;

    // Deny from the session page: the message is what the agent is told.
    b.click(&format!("tr[data-session=\"{sid}\"] a")).await;
    let li = format!("#timeline li.ev.approval.pending[data-approval=\"{second}\"]");
    b.fill(&format!("{li} textarea"), "not that directory")
        .await;
    b.click(&format!("{li} button[data-decision=\"deny\"]"))
        .await;
    b.wait_js(
        &format!(
            "document.querySelector('#timeline li[data-approval=\"{second}\"] .decision.denied')"
        ),
        "denied in the page",
    )
    .await;
    let d = approval(&url, &second).await;
    assert_eq!(d["status"], "denied", "{d}");
    assert_eq!(d["message"], "not that directory", "{d}");
    leaves_waiting(&url, &sid).await;
    b.assert_no_script_errors().await;
    b.close().await;
}

/// `call_h` with a bearer key (and more headers).
async fn as_key(
    key: &str,
    method: &str,
    url: &str,
    body: Option<Value>,
    more: &[(&str, &str)],
) -> (u16, Value) {
    let bearer = format!("Bearer {key}");
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend_from_slice(more);
    call_h(method, url, body, &headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_see_the_request_and_operators_decide() {
    let dir = tempdir();
    let data = dir.path().join("coord");
    std::fs::create_dir_all(&data).unwrap();
    let viewer = crate::login::offline_key(&data, "viewer");
    let operator = crate::login::offline_key(&data, "operator");
    let runner = crate::login::offline_key(&data, "runner");
    let coord = Coordinator::start(dir.path(), vec![("AUTH_ENABLED".into(), "true".into())]).await;
    let url = coord.url.clone();
    let Some(b) = Browser::start(&url).await else {
        return;
    };

    // A runner with its key holds a run and asks.
    let (st, reg) = as_key(
        &runner,
        "POST",
        &format!("{url}/runner/register"),
        Some(
            json!({"hostname": "manual", "project_dir": "/manual", "executor_profile": "manual",
                    "executor": {"type": "autonomous"}}),
        ),
        &[],
    )
    .await;
    assert_eq!(st, 200, "{reg}");
    let rid = reg["runner_id"].as_str().unwrap().to_string();
    let (st, r) = as_key(
        &operator,
        "POST",
        &format!("{url}/runs"),
        Some(json!({"type": "start_session", "parameters": {"prompt": "deploy"}})),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{r}");
    let sid = r["session_id"].as_str().unwrap().to_string();
    let run = wait_for("the run for the runner", || async {
        let (st, b) = as_key(
            &runner,
            "GET",
            &format!("{url}/runner/runs?runner_id={rid}"),
            None,
            &[],
        )
        .await;
        (st == 200 && b.get("run").is_some()).then(|| b["run"].clone())
    })
    .await;
    let lease = [
        ("x-aof-lease-token", run["lease_token"].as_str().unwrap()),
        ("x-aof-run-id", run["run_id"].as_str().unwrap()),
    ];
    let (st, s) = as_key(
        &runner,
        "POST",
        &format!(
            "{url}/runner/runs/{}/started",
            run["run_id"].as_str().unwrap()
        ),
        Some(json!({"runner_id": rid})),
        &lease,
    )
    .await;
    assert_eq!(st, 200, "{s}");
    let (st, a) = as_key(
        &runner,
        "POST",
        &format!("{url}/sessions/{sid}/approvals"),
        Some(json!({"run_id": run["run_id"], "tool_name": "Write",
                    "tool_input": {"file_path": "/etc/motd"}, "request_key": "w1"})),
        &lease,
    )
    .await;
    assert_eq!(st, 201, "{a}");
    let id = a["approval_id"].as_str().unwrap().to_string();
    let li = format!("#timeline li.ev.approval.pending[data-approval=\"{id}\"]");

    // A viewer sees the request and the count, and no buttons.
    let session_page = format!("/ui/sessions/{sid}");
    b.goto(&format!(
        "/ui/login?next={}",
        session_page.replace('/', "%2F")
    ))
    .await;
    b.fill("#key", &viewer).await;
    b.click("#login").await;
    b.wait_js(
        &format!("location.pathname === '{session_page}'"),
        "the session page",
    )
    .await;
    b.wait_js(
        &format!("document.querySelector('{li} .note')"),
        "the request, read-only",
    )
    .await;
    assert_eq!(b.count(&format!("{li} button, {li} textarea")).await, 0);
    assert!(b
        .js(&format!("document.querySelector('{li}').textContent"))
        .await
        .as_str()
        .unwrap()
        .contains("/etc/motd"));
    b.wait_js(
        "document.getElementById('nav-approvals-count').dataset.count === '1'",
        "the nav count",
    )
    .await;
    b.check_page("approval-viewer").await;

    // An operator decides.
    b.click("#logout").await;
    b.wait_js("location.pathname === '/ui/login'", "logged out")
        .await;
    b.goto(&format!(
        "/ui/login?next={}",
        session_page.replace('/', "%2F")
    ))
    .await;
    b.fill("#key", &operator).await;
    b.click("#login").await;
    b.wait_js(
        &format!("location.pathname === '{session_page}'"),
        "the session page",
    )
    .await;
    b.fill(&format!("{li} textarea"), "not on this host").await;
    b.click(&format!("{li} button[data-decision=\"deny\"]"))
        .await;
    b.wait_js(
        &format!("document.querySelector('#timeline li[data-approval=\"{id}\"] .decision.denied')"),
        "denied in the page",
    )
    .await;
    let (st, d) = as_key(&viewer, "GET", &format!("{url}/approvals/{id}"), None, &[]).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(
        (&d["status"], &d["message"]),
        (&json!("denied"), &json!("not on this host"))
    );
    assert!(d["decided_by"].as_str().unwrap().starts_with("key:"), "{d}");
    b.assert_no_script_errors().await;
    b.close().await;
}
