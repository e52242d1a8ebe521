//! The `aof` CLI and `aof bench --url` against the reference coordinator.

use std::{path::Path, time::Duration};

use serde_json::{json, Value};

use crate::{
    harness::*,
    reference::{RefCoordinator, RefPaths},
};

/// Runs `aof ARGS` (nothing from the caller's environment picks another coordinator or
/// a credential); returns exit code, stdout and stderr.
pub(crate) async fn aof(args: &[&str]) -> (i32, String, String) {
    aof_cli(args, &[]).await
}

/// `aof ARGS` that must exit 0; its stdout.
#[track_caller]
pub(crate) fn ok((code, out, err): (i32, String, String)) -> String {
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    out
}

/// The session id from `aof run`'s "run RUN · session SID" line on stderr.
pub(crate) fn session_of(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.split("· session ").nth(1))
        .unwrap_or_else(|| panic!("no session line in:\n{stderr}"))
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_follow_and_the_sessions_commands() {
    let Some(p) = RefPaths::get() else { return };
    let dir = tempdir();
    let rc = RefCoordinator::start(&p, dir.path()).await;
    let u = rc.url.as_str();
    let r = Runner::start(u, dir.path(), "cli-echo", &[]).await;

    let (code, out, err) = aof(&[
        "run",
        "demo",
        "hello reference",
        "--follow",
        "--url",
        u,
        "--timeout",
        "60",
    ])
    .await;
    assert_eq!(
        code,
        0,
        "stdout:\n{out}\nstderr:\n{err}\nrunner:\n{}",
        r.log()
    );
    let sid = session_of(&err);
    for line in [
        "[run_start]",
        "[user] hello reference",
        "[assistant] hello reference",
        "[result] hello reference",
    ] {
        assert!(out.lines().any(|l| l == line), "{line:?} in:\n{out}");
    }
    assert!(err.contains(&format!("session {sid}: Finished")), "{err}");

    // list: the table and the JSON name the session, finished, with its agent.
    let table = ok(aof(&["sessions", "list", "--url", u]).await);
    let row = table
        .lines()
        .find(|l| l.starts_with(&sid))
        .unwrap_or_else(|| panic!("{sid} in:\n{table}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1..3], ["finished", "demo"], "{row}");
    let listed: Value =
        serde_json::from_str(&ok(aof(&["sessions", "list", "--url", u, "--json"]).await)).unwrap();
    assert!(
        listed["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["session_id"] == sid.as_str() && s["status"] == "finished"),
        "{listed}"
    );

    // show: the reference's session record, bound by our runner.
    let shown: Value =
        serde_json::from_str(&ok(
            aof(&["sessions", "show", &sid, "--url", u, "--json"]).await
        ))
        .unwrap();
    let shown = &shown["session"];
    assert_eq!(shown["session_id"], sid.as_str(), "{shown}");
    assert_eq!(shown["status"], "finished", "{shown}");
    assert_eq!(shown["agent_name"], "demo", "{shown}");
    assert_eq!(shown["hostname"], "cli-echo", "{shown}");
    let text = ok(aof(&["sessions", "show", &sid, "--url", u]).await);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["status", "finished"]),
        "{text}"
    );

    // events: the stored events, as lines and as the API's JSON; --follow on an ended
    // session prints them and exits 0.
    let want = [
        "[run_start]",
        "[user] hello reference",
        "[assistant] hello reference",
        "[result] hello reference",
        "[run_completed]",
    ];
    let lines = ok(aof(&["sessions", "events", &sid, "--url", u]).await);
    assert_eq!(lines.lines().collect::<Vec<_>>(), want, "{lines}");
    let followed = ok(aof(&["sessions", "events", &sid, "--follow", "--url", u]).await);
    assert_eq!(followed.lines().collect::<Vec<_>>(), want, "{followed}");
    let evs: Value = serde_json::from_str(&ok(aof(&[
        "sessions", "events", &sid, "--url", u, "--json",
    ])
    .await))
    .unwrap();
    let types: Vec<&str> = evs["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["run_start", "message", "message", "result", "run_completed"]
    );

    // A failing run: --follow exits 1 and says so.
    let failing = echo_prompt(json!({"echo_fail": "no luck"}), "x");
    let (code, out, err) = aof(&[
        "run",
        "demo",
        &failing,
        "--follow",
        "--url",
        u,
        "--timeout",
        "60",
    ])
    .await;
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("Failed"), "{err}");

    // stop: a long run, stopped with the CLI; the reference records it stopped.
    let slow = echo_prompt(json!({"echo_events": 3, "echo_delay_ms": 60_000}), "slow");
    let (code, _, err) = aof(&["run", "demo", &slow, "--url", u]).await;
    assert_eq!(code, 0, "{err}");
    let sid = session_of(&err);
    wait_session(u, &sid, "running").await;
    ok(aof(&["sessions", "stop", &sid, "--url", u]).await);
    wait_session(u, &sid, "stopped").await;
}

type Seen = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A loopback proxy to `target` that holds each `/sse/sessions` request back for
/// `delay` before passing it on: a follower whose stream attaches late. Records the
/// followed session's status at that moment.
async fn late_sse_proxy(
    target: String,
    delay: Duration,
) -> (String, Seen, tokio::task::JoinHandle<()>) {
    let seen = Seen::default();
    let statuses = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (target, statuses) = (target.clone(), statuses.clone());
        async move {
            if req.uri().path() == "/sse/sessions" {
                tokio::time::sleep(delay).await;
                let sid = req
                    .uri()
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("session_id="));
                if let Some(sid) = sid {
                    let status = session_status(&target, sid).await;
                    statuses.lock().unwrap().push(status);
                }
            }
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let mut rb = client().request(req.method().clone(), format!("{target}{path}"));
            for (k, v) in req.headers().iter().filter(|(k, _)| *k != "host") {
                rb = rb.header(k, v);
            }
            let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .unwrap();
            let resp = rb.body(body).send().await.unwrap();
            let mut out = axum::response::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                out = out.header(k, v);
            }
            out.body(axum::body::Body::from_stream(resp.bytes_stream()))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, seen, task)
}

/// The reference does not replay its stream (`Last-Event-ID` is ignored): a run that
/// ends before `aof run --follow` attaches sends it nothing. The CLI reads the session
/// once attached, so it neither waits for ever nor misses the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_follow_attached_after_the_run_ended() {
    let Some(p) = RefPaths::get() else { return };
    let dir = tempdir();
    let rc = RefCoordinator::start(&p, dir.path()).await;
    let r = Runner::start(&rc.url, dir.path(), "late-echo", &[]).await;
    let (url, seen, proxy) = late_sse_proxy(rc.url.clone(), Duration::from_secs(3)).await;

    let (code, out, err) = aof(&[
        "run",
        "demo",
        "too fast",
        "--follow",
        "--url",
        &url,
        "--timeout",
        "30",
    ])
    .await;
    proxy.abort();
    assert_eq!(
        code,
        0,
        "stdout:\n{out}\nstderr:\n{err}\nrunner:\n{}",
        r.log()
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "[run_start]",
            "[user] too fast",
            "[assistant] too fast",
            "[result] too fast",
            "[run_completed]"
        ]
    );
    assert!(err.contains("Finished"), "{err}");
    // The session had ended when the stream attached (else this proves nothing).
    assert_eq!(*seen.lock().unwrap(), ["finished"]);
}

/// The agent's files as the reference stores them: `agent.json` with the system prompt
/// and MCP servers of its sibling files.
fn expected_agent(dir: &Path) -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(dir.join("agent.json")).unwrap();
    let Value::Object(mut want) = serde_json::from_str(&text).unwrap() else {
        panic!("{} is not an object", dir.display())
    };
    if let Ok(prompt) = std::fs::read_to_string(dir.join("agent.system-prompt.md")) {
        if !prompt.trim().is_empty() {
            want.insert("system_prompt".into(), json!(prompt));
        }
    }
    if let Ok(mcp) = std::fs::read_to_string(dir.join("agent.mcp.json")) {
        let mcp: Value = serde_json::from_str(&mcp).unwrap();
        want.insert("mcp_servers".into(), mcp["mcpServers"].clone());
    }
    want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_apply_of_the_reference_examples() {
    let Some(p) = RefPaths::get() else { return };
    let dir = tempdir();
    let rc = RefCoordinator::start(&p, dir.path()).await;
    // The examples name these by reference; they are not agents, so not ours to apply.
    rc.seed_config(&p, &["capabilities", "scripts", "mcp-servers"]);
    let u = rc.url.as_str();
    let examples = p.dir.join("config/agents");
    let mut folders: Vec<_> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("agent.json").is_file())
        .collect();
    folders.sort();
    assert!(folders.len() > 20, "{folders:?}");
    let examples = examples.to_str().unwrap();

    // Applied twice: created, then updated in place, the same agents both times.
    for verb in ["created", "updated"] {
        let (code, out, err) = aof(&["agents", "apply", examples, "--url", u]).await;
        assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
        let said = format!("{out}{err}");
        let (st, listed) = call("GET", &format!("{u}/agents"), None).await;
        assert_eq!(st, 200, "{listed}\ncoordinator log:\n{}", rc.log());
        let mut names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        names.sort();
        let mut want_names = Vec::new();
        for folder in &folders {
            let want = expected_agent(folder);
            let name = want["name"].as_str().unwrap().to_string();
            assert!(said.contains(&format!("{verb} agent {name}")), "{said}");
            let (st, got) = call("GET", &format!("{u}/agents/{name}?raw=true"), None).await;
            assert_eq!(st, 200, "{name}: {got}");
            for (key, value) in &want {
                assert_eq!(&got[key.as_str()], value, "{name}.{key}");
            }
            want_names.push(name);
        }
        want_names.sort();
        assert_eq!(names, want_names);
    }
}

/// `aof bench SCENARIO --url U ARGS`: exits 0 and prints one JSON report on stdout.
async fn bench(scenario: &str, url: &str, args: &[&str]) -> Value {
    let mut all = vec!["bench", scenario, "--url", url];
    all.extend_from_slice(args);
    let out = ok(aof(&all).await);
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON report in:\n{out}"));
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["scenario"], scenario, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_lifecycle_and_ingest_run_to_completion() {
    let Some(p) = RefPaths::get() else { return };
    let dir = tempdir();
    let rc = RefCoordinator::start(&p, dir.path()).await;
    let pid = rc.child.id().unwrap().to_string();
    let u = rc.url.as_str();

    let v = bench(
        "lifecycle",
        u,
        &[
            "-n",
            "30",
            "-r",
            "2",
            "-e",
            "2",
            "--producers",
            "2",
            "--timeout",
            "120",
            "--pid",
            &pid,
        ],
    )
    .await;
    assert_eq!(
        (v["runs_created"].clone(), v["runs_completed"].clone()),
        (json!(30), json!(30)),
        "{v}"
    );
    assert!(v["runs_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["e2e_p50_ms"].as_f64().unwrap() > 0.0, "{v}");
    // Measured from outside: the reference process's own CPU time.
    assert!(v["coordinator_cpu_s"].as_f64().unwrap() > 0.0, "{v}");

    let v = bench("ingest", u, &["-c", "4", "-d", "1", "--sessions", "2"]).await;
    assert!(v["events"].as_u64().unwrap() > 0, "{v}");
    assert!(v["events_per_s"].as_f64().unwrap() > 0.0, "{v}");
}
