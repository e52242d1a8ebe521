//! Stopping (issue #28): SIGTERM/SIGINT ends every stream and the process exits 0
//! within `coordinator.shutdown_timeout`, with nothing acknowledged lost — for `aof
//! coordinator` (100 SSE subscribers, 20 parked long-polls, an MCP call waiting, writes
//! in flight), `aof up` (its runner's drain first; a live dashboard page in chromium;
//! a second Ctrl-C), `aof dashboard` and `aof runner`. Timings are asserted only as
//! upper bounds with room for a loaded machine; "in time" is read from the log, which
//! names anything the bound had to cut.

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use aof_wire::sse::parse::Parser;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::{harness::*, mcp_client::*};

/// The bound these tests configure (the default).
const BOUND: Duration = Duration::from_secs(10);
/// Room on top of the bound for a loaded 2-core machine (process start-up, scheduling).
const SLACK: Duration = Duration::from_secs(20);
const SUBSCRIBERS: usize = 100;
const POLLS: usize = 20;

fn signal(child: &tokio::process::Child, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(child.id().expect("still running") as i32);
    nix::sys::signal::kill(pid, sig).expect("signal");
}

/// Waits for `child` to exit after a signal sent at `since`; asserts exit 0 within
/// `bound` + slack and returns how long it took.
async fn exits_within(
    child: &mut tokio::process::Child,
    since: Instant,
    bound: Duration,
    logs: &Logs,
) -> Duration {
    let status = tokio::time::timeout(bound + SLACK, child.wait())
        .await
        .unwrap_or_else(|_| panic!("no exit within {:?}\n{}", bound + SLACK, logs.read()))
        .unwrap();
    assert!(status.success(), "exit {status}\n{}", logs.read());
    since.elapsed()
}

/// The log files `<dir>/<prefix>*.log` of a process and its restarts.
struct Logs {
    dir: std::path::PathBuf,
    prefix: &'static str,
}

impl Logs {
    fn read(&self) -> String {
        let mut files: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with(self.prefix) && name.ends_with(".log")
            })
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn message(sid: &str, text: &str) -> Value {
    json!({"event_type": "message", "session_id": sid, "timestamp": "2026-01-01T00:00:00+00:00",
           "role": "assistant", "content": [{"type": "text", "text": text}]})
}

/// Told once its test holds for a [`Feed`] being read.
type Ready = (tokio::sync::oneshot::Sender<()>, fn(&Feed) -> bool);

/// One `GET /sse/sessions` client, read to its end: the message texts it got (in
/// order), the last id, and whether the stream ended with a `retry:` frame.
#[derive(Default, Debug)]
struct Feed {
    texts: Vec<String>,
    last_id: Option<String>,
    ended_with_retry: bool,
}

impl Feed {
    /// Reads from `url` (resuming after `self.last_id`) until the stream ends, or until
    /// `enough` says so. `ready` fires once its test holds after a frame.
    async fn read(&mut self, url: &str, ready: Option<Ready>, enough: impl Fn(&Feed) -> bool) {
        let mut rb = client().get(format!("{url}/sse/sessions"));
        if let Some(id) = &self.last_id {
            rb = rb.header("last-event-id", id);
        }
        let resp = rb.send().await.expect("open the feed");
        assert_eq!(resp.status().as_u16(), 200);
        let mut body = resp.bytes_stream();
        let mut parser = Parser::default();
        let mut ready = ready;
        let mut tail = String::new();
        loop {
            let chunk = tokio::time::timeout(PATIENCE, body.next())
                .await
                .expect("a frame or the end within patience");
            let Some(Ok(chunk)) = chunk else { break };
            tail.push_str(&String::from_utf8_lossy(&chunk));
            if tail.len() > 200 {
                tail.drain(..tail.len() - 200);
            }
            for f in parser.feed(&chunk) {
                if f.id.is_some() {
                    self.last_id = f.id.clone();
                }
                if f.event == "event" {
                    let v: Value = serde_json::from_str(&f.data).unwrap();
                    if let Some(t) = v["data"]["content"][0]["text"].as_str() {
                        self.texts.push(t.to_string());
                    }
                }
                if ready.as_ref().is_some_and(|(_, test)| test(self)) {
                    let _ = ready.take().unwrap().0.send(());
                }
            }
            if enough(self) {
                return;
            }
        }
        self.ended_with_retry = tail.ends_with("retry: 1000\n\n");
    }
}

/// The message texts stored for `sessions`.
async fn stored_texts(url: &str, sessions: &[String]) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for sid in sessions {
        for e in events(url, sid).await {
            if let Some(t) = e["content"][0]["text"].as_str() {
                all.insert(t.to_string());
            }
        }
    }
    all
}

async fn gauge(url: &str, name: &str) -> i64 {
    let text = client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}

/// Writers posting single events and batches until the coordinator is gone; what
/// each got a 201 for is acknowledged.
fn writers(url: &str, sessions: &[String], acked: Arc<std::sync::Mutex<Vec<String>>>) {
    for (i, sid) in sessions.iter().enumerate() {
        let (url, sid, acked) = (url.to_string(), sid.clone(), acked.clone());
        tokio::spawn(async move {
            let c = client();
            for n in 0.. {
                let (path, body, texts) = if i % 2 == 0 {
                    let t = format!("{sid}-{n}");
                    ("events", message(&sid, &t), vec![t])
                } else {
                    let texts: Vec<String> = (0..10).map(|k| format!("{sid}-{n}.{k}")).collect();
                    let events: Vec<Value> = texts.iter().map(|t| message(&sid, t)).collect();
                    ("events/batch", json!({ "events": events }), texts)
                };
                let res = c
                    .post(format!("{url}/sessions/{sid}/{path}"))
                    .json(&body)
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().as_u16() == 201 => acked.lock().unwrap().extend(texts),
                    // The coordinator is going or gone: this write was not acknowledged.
                    _ => return,
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_streams_polls_and_mcp_in_time_and_loses_no_acknowledged_event() {
    let dir = tempdir();
    let mut cenv = fast_env();
    cenv.extend(env(&[
        // Parked polls would otherwise answer 204 on their own within the test.
        ("AOF_POLL_TIMEOUT", "300"),
        ("AOF_MAX_STREAMS_PER_KEY", "256"),
        ("AOF_SHUTDOWN_TIMEOUT", "10"),
    ]));
    let mut c = Coordinator::start(dir.path(), cenv).await;
    let url = c.url.clone();
    // Sessions without a runner that takes their runs: the test writes their events.
    let mut sessions = Vec::new();
    for i in 0..4 {
        sessions.push(start_run(&url, &format!("s{i}")).await.1);
    }

    // 100 subscribers, each attached (its init frame read) before anything is written.
    let mut subs = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let url = url.clone();
        subs.push((
            tokio::spawn(async move {
                let mut f = Feed::default();
                f.read(&url, Some((tx, |_| true)), |_| false).await;
                f
            }),
            rx,
        ));
    }
    let mut feeds = Vec::new();
    for (task, rx) in subs {
        rx.await.expect("subscriber attached");
        feeds.push(task);
    }

    // 20 parked long-polls (stops only, so none takes the pending runs).
    let mut polls = Vec::new();
    for i in 0..POLLS {
        let id = register(&url, &format!("parked{i}")).await;
        let url = url.clone();
        polls.push(tokio::spawn(async move {
            let resp = client()
                .get(format!(
                    "{url}/runner/runs?runner_id={id}&accept_runs=false"
                ))
                .send()
                .await
                .expect("the long-poll is answered, not dropped");
            (
                resp.status().as_u16(),
                resp.headers()
                    .contains_key(aof_wire::runner::DRAINING_HEADER),
            )
        }));
    }
    wait_for("20 parked long-polls", || async {
        (gauge(&url, "aof_runner_polls_waiting").await == POLLS as i64).then_some(())
    })
    .await;

    // An MCP session with a call waiting for a child run nobody will take.
    let mcp = connect(&url, Some(&sessions[0])).await;
    let mcp_call = tokio::spawn(async move {
        let params = rmcp::model::CallToolRequestParams::new("start_agent_session").with_arguments(
            json!({"prompt": "child", "mode": "sync"})
                .as_object()
                .unwrap()
                .clone(),
        );
        let res = mcp.call_tool(params).await;
        let res = res.map(|r| {
            let text = r
                .content
                .first()
                .and_then(|c| c.as_text())
                .map(|t| t.text.clone());
            (r.is_error == Some(true), text.unwrap_or_default())
        });
        (res, mcp)
    });
    wait_for("the MCP child session", || async {
        let (_, b) = call("GET", &format!("{url}/sessions"), None).await;
        b["sessions"]
            .as_array()?
            .iter()
            .any(|s| s["parent_session_id"] == sessions[0].as_str())
            .then_some(())
    })
    .await;

    // Writes in flight: single events and batches, until the coordinator is gone.
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    writers(&url, &sessions, acked.clone());
    wait_for("writes under way", || async {
        (acked.lock().unwrap().len() >= 100).then_some(())
    })
    .await;

    let t0 = Instant::now();
    signal(&c.child, nix::sys::signal::Signal::SIGTERM);
    let logs = Logs {
        dir: c.data_dir.clone(),
        prefix: "coordinator.",
    };
    let took = exits_within(&mut c.child, t0, BOUND, &logs).await;
    let log = logs.read();
    assert!(log.contains("coordinator stopped"), "{log}");
    assert!(
        !log.contains("cut:"),
        "everything ended before the bound: {log}"
    );
    eprintln!("coordinator stopped {took:?} after SIGTERM");
    if !postgres_mode() {
        // Checkpointed: the database file alone holds every commit.
        let wal = c.data_dir.join("observability.db-wal");
        let wal_len = std::fs::metadata(&wal).map_or(0, |m| m.len());
        assert_eq!(wal_len, 0, "{} after the stop", wal.display());
    }

    for p in polls {
        let (status, draining) = p.await.unwrap();
        assert_eq!((status, draining), (204, true), "a parked poll's answer");
    }
    let (mcp_res, mcp) = tokio::time::timeout(PATIENCE, mcp_call)
        .await
        .expect("the MCP call ends")
        .unwrap();
    // The waiting call is answered: a tool error saying the coordinator is stopping.
    assert!(
        matches!(&mcp_res, Ok((true, text)) if text.contains("stopping")),
        "{mcp_res:?}"
    );
    let mut feeds: Vec<Feed> = futures::future::join_all(feeds)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let retried = feeds.iter().filter(|f| f.ended_with_retry).count();
    assert_eq!(
        retried, SUBSCRIBERS,
        "every stream ended with a retry: frame"
    );

    // Restarted: every acknowledged event is stored; then more are written.
    c.restart().await;
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    let stored = stored_texts(&url, &sessions).await;
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    for sid in &sessions {
        for n in 0..3 {
            let (st, b) = call(
                "POST",
                &format!("{url}/sessions/{sid}/events"),
                Some(message(sid, &format!("{sid}-after-{n}"))),
            )
            .await;
            assert_eq!(st, 201, "{b}");
        }
    }
    let all = stored_texts(&url, &sessions).await;
    assert_eq!(all.len(), stored.len() + 3 * sessions.len());
    // The MCP client carries on against the restarted coordinator.
    let after = tokio::time::timeout(PATIENCE, mcp.list_all_tools())
        .await
        .expect("an answer from the restarted coordinator");
    assert!(after.is_ok_and(|tools| !tools.is_empty()));

    // Each subscriber resumes from its Last-Event-ID and ends with every event once.
    let want = all.len();
    let resumed = futures::future::join_all(feeds.drain(..).map(|mut f| {
        let url = url.clone();
        tokio::spawn(async move {
            f.read(&url, None, |f| f.texts.len() >= want).await;
            f
        })
    }))
    .await;
    for f in resumed {
        let f = f.unwrap();
        let seen: BTreeSet<String> = f.texts.iter().cloned().collect();
        assert_eq!(seen.len(), f.texts.len(), "an event came twice");
        assert_eq!(seen, all, "a subscriber missed events");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_sigint_drains_its_runner_then_stops_and_a_dashboard_page_resumes() {
    let dir = tempdir();
    let go = dir.path().join("go");
    // The run holds until the test creates `go`, so the runner's drain lasts until then.
    let script = format!(
        "read p; echo \"started $p\"; while [ ! -f {} ]; do sleep 0.05; done; echo \"done $p\"",
        go.display()
    );
    let args = [
        "--executor",
        "command",
        "--command",
        &format!("sh -c '{script}'"),
        "--drain-timeout",
        "120",
    ];
    let uenv = env(&[("AOF_SHUTDOWN_TIMEOUT", "10")]);
    let logs = Logs {
        dir: dir.path().to_path_buf(),
        prefix: "up.",
    };
    let mut up = Up::start_with(dir.path(), 0, &args, &uenv, "up.0.log").await;
    let url = up.url.clone();
    let (_, sid) = start_run(&url, "held").await;
    wait_for("the held run to start", || async {
        events(&url, &sid)
            .await
            .iter()
            .any(|e| e["content"][0]["text"] == "started held")
            .then_some(())
    })
    .await;

    // A subscriber over HTTP, and the session's page in chromium (when available).
    let sub = {
        let url = url.clone();
        tokio::spawn(async move {
            // From the first event on, to compare with the store at the end.
            let mut f = Feed {
                last_id: Some("0".into()),
                ..Feed::default()
            };
            f.read(&url, None, |_| false).await;
            f
        })
    };
    let browser = crate::driver::Browser::start(&url).await;
    if let Some(b) = &browser {
        b.goto(&format!("/ui/sessions/{sid}")).await;
        b.wait_js(
            "document.getElementById('live').textContent === 'Live'",
            "live badge",
        )
        .await;
        b.js("window.__samePage = true").await;
    }

    let t0 = Instant::now();
    signal(&up.child, nix::sys::signal::Signal::SIGINT);
    wait_for("the runner to drain", || async {
        up.log().contains("draining").then_some(())
    })
    .await;
    // Draining its runner: still serving, but no longer ready.
    let (st, b) = call("GET", &format!("{url}/ready"), None).await;
    assert_eq!((st, b["code"].as_str()), (503, Some("unavailable")), "{b}");
    let (st, _) = call("GET", &format!("{url}/health"), None).await;
    assert_eq!(st, 200);
    std::fs::write(&go, "").unwrap();
    exits_within(&mut up.child, t0, BOUND, &logs).await;
    let log = up.log();
    assert!(log.contains("drained: every active run finished"), "{log}");
    assert!(
        log.contains("coordinator stopped") && !log.contains("cut:"),
        "{log}"
    );
    let feed = tokio::time::timeout(PATIENCE, sub).await.unwrap().unwrap();
    assert!(feed.ended_with_retry, "{feed:?}");

    // Back on the same port and data: the page and the subscriber resume.
    let mut up = Up::start_with(dir.path(), up.port, &args, &uenv, "up.1.log").await;
    assert_eq!(session_status(&url, &sid).await, "finished");
    let (st, b) = call(
        "POST",
        &format!("{url}/runs"),
        Some(json!({"type": "resume_session", "session_id": sid,
                    "parameters": {"prompt": "after the restart"}})),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    wait_for("the follow-up to finish", || async {
        events(&url, &sid)
            .await
            .iter()
            .any(|e| e["content"][0]["text"] == "done after the restart")
            .then_some(())
    })
    .await;
    wait_session(&url, &sid, "finished").await;
    let stored = stored_texts(&url, std::slice::from_ref(&sid)).await;
    let mut feed = feed;
    feed.read(&url, None, |f| f.texts.len() >= stored.len())
        .await;
    let seen: BTreeSet<String> = feed.texts.iter().cloned().collect();
    assert_eq!(seen.len(), feed.texts.len(), "an event came twice");
    assert_eq!(seen, stored);
    if let Some(b) = browser {
        b.wait_js("AOF.stats.feedDrops >= 1", "the page noticing the stop")
            .await;
        b.wait_js(
            "[...document.querySelectorAll('#timeline > li')].some(li => li.textContent.includes('done after the restart'))",
            "the event written after the restart",
        )
        .await;
        let rows = b
            .js("document.querySelectorAll('#timeline > li').length")
            .await;
        assert_eq!(rows.as_u64(), Some(events(&url, &sid).await.len() as u64));
        assert_eq!(b.js("window.__samePage === true").await, true, "no reload");
        b.assert_no_script_errors().await;
        b.close().await;
    }
    signal(&up.child, nix::sys::signal::Signal::SIGINT);
    exits_within(&mut up.child, Instant::now(), BOUND, &logs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_second_sigint_hands_runs_back_and_exits_at_once() {
    let dir = tempdir();
    // Never ends by itself: only with the process that started it.
    let script = "read p; echo started; while kill -0 $PPID 2>/dev/null; do sleep 0.05; done";
    let args = [
        "--executor",
        "command",
        "--command",
        &format!("sh -c '{script}'"),
        "--drain-timeout",
        "600",
        "--stop-grace",
        "2",
    ];
    let logs = Logs {
        dir: dir.path().to_path_buf(),
        prefix: "up.",
    };
    let mut up = Up::start_with(dir.path(), 0, &args, &[], "up.0.log").await;
    let url = up.url.clone();
    let (run_id, sid) = start_run(&url, "forever").await;
    wait_for("the run to start", || async {
        events(&url, &sid)
            .await
            .iter()
            .any(|e| e["content"][0]["text"] == "started")
            .then_some(())
    })
    .await;
    let t0 = Instant::now();
    signal(&up.child, nix::sys::signal::Signal::SIGINT);
    wait_for("the runner to drain", || async {
        up.log().contains("draining").then_some(())
    })
    .await;
    signal(&up.child, nix::sys::signal::Signal::SIGINT);
    // Far below the 600 s drain: the stop grace, a report, the coordinator's stop.
    exits_within(&mut up.child, t0, BOUND, &logs).await;
    let log = up.log();
    assert!(log.contains("second signal"), "{log}");
    assert!(log.contains("handed back"), "{log}");

    // The run went back to the queue, not lost: the next runner takes it as attempt 2.
    let mut up = Up::start_with(dir.path(), up.port, &args, &[], "up.1.log").await;
    wait_for("the handed-back run to run again", || async {
        let (_, run) = call("GET", &format!("{url}/runs/{run_id}"), None).await;
        (run["attempt"] == 2 && run["status"] == "running").then_some(())
    })
    .await;
    let t1 = Instant::now();
    signal(&up.child, nix::sys::signal::Signal::SIGINT);
    wait_for("the second runner to drain", || async {
        up.log().contains("draining").then_some(())
    })
    .await;
    signal(&up.child, nix::sys::signal::Signal::SIGINT);
    exits_within(&mut up.child, t1, BOUND, &logs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_sigterm_ends_forwarded_streams_while_the_coordinator_stays() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let (_, sid) = start_run(&c.url, "through the proxy").await;
    let addr_file = dir.path().join("dash.addr");
    let log = dir.path().join("dashboard.log");
    let mut dash = tokio::process::Command::new(BIN)
        .args(["dashboard", "--listen", "127.0.0.1:0", "--url", &c.url])
        .arg("--addr-file")
        .arg(&addr_file)
        .env("AOF_SHUTDOWN_TIMEOUT", "10")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let dash_url = format!(
        "http://{}",
        wait_for("dashboard address", || async {
            std::fs::read_to_string(&addr_file)
                .ok()
                .filter(|s| !s.is_empty())
        })
        .await
    );
    // Ten streams through the proxy, each with an event in it when the stop comes.
    let (st, _) = call(
        "POST",
        &format!("{}/sessions/{sid}/events", c.url),
        Some(message(&sid, "before the stop")),
    )
    .await;
    assert_eq!(st, 201);
    let got_it = Arc::new(AtomicUsize::new(0));
    let mut feeds = Vec::new();
    for _ in 0..10 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let u = dash_url.clone();
        feeds.push(tokio::spawn(async move {
            let mut f = Feed {
                last_id: Some("0".into()),
                ..Feed::default()
            };
            f.read(&u, Some((tx, |f| !f.texts.is_empty())), |_| false)
                .await;
            f
        }));
        rx.await.unwrap();
        got_it.fetch_add(1, Ordering::Relaxed);
    }
    let t0 = Instant::now();
    signal(&dash, nix::sys::signal::Signal::SIGTERM);
    let logs = Logs {
        dir: dir.path().to_path_buf(),
        prefix: "dashboard",
    };
    exits_within(&mut dash, t0, BOUND, &logs).await;
    let log = logs.read();
    assert!(
        log.contains("dashboard stopped") && !log.contains("cut:"),
        "{log}"
    );
    for f in futures::future::join_all(feeds).await {
        let f = f.unwrap();
        assert!(f.ended_with_retry, "{f:?}");
        assert_eq!(f.texts, vec!["before the stop".to_string()]);
    }
    assert_eq!(got_it.load(Ordering::Relaxed), 10);
    // The coordinator was not the one stopping.
    let (st, _) = call("GET", &format!("{}/ready", c.url), None).await;
    assert_eq!(st, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_repolls_at_once_on_a_draining_answer_and_stops_in_time_itself() {
    let dir = tempdir();
    let mut cenv = fast_env();
    cenv.extend(env(&[("AOF_POLL_TIMEOUT", "300")]));
    let mut c = Coordinator::start(dir.path(), cenv).await;
    let mut r = Runner::start(&c.url, dir.path(), "r1", &[]).await;
    wait_for("the runner's long-poll", || async {
        (gauge(&c.url, "aof_runner_polls_waiting").await == 1).then_some(())
    })
    .await;
    let t0 = Instant::now();
    signal(&c.child, nix::sys::signal::Signal::SIGTERM);
    let logs = Logs {
        dir: c.data_dir.clone(),
        prefix: "coordinator.",
    };
    exits_within(&mut c.child, t0, BOUND, &logs).await;
    wait_for("the runner to hear the coordinator is stopping", || async {
        r.log()
            .contains("coordinator is stopping; polling again")
            .then_some(())
    })
    .await;
    // Its coordinator gone, the runner itself still stops at once on SIGTERM.
    let t1 = Instant::now();
    signal(&r.child, nix::sys::signal::Signal::SIGTERM);
    let status = tokio::time::timeout(BOUND + SLACK, r.child.wait())
        .await
        .expect("the runner exits")
        .unwrap();
    assert!(status.success(), "{}", r.log());
    eprintln!("runner stopped {:?} after SIGTERM", t1.elapsed());
}

/// A write whose body never finishes arriving: open until the process ends. Returns
/// once the handler is reading the body (the server's `100 Continue`).
async fn stalled_write(url: &str, sid: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /sessions/{sid}/events HTTP/1.1\r\nHost: {addr}\r\nExpect: 100-continue\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
        .await
        .expect("100 Continue")
        .unwrap();
    let got = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(got.starts_with("HTTP/1.1 100"), "{got}");
    s.write_all(b"{\"event_type\"").await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_bound_what_is_still_open_is_cut_and_named_and_the_exit_is_clean() {
    let dir = tempdir();
    let mut cenv = fast_env();
    cenv.extend(env(&[("AOF_SHUTDOWN_TIMEOUT", "2")]));
    let mut c = Coordinator::start(dir.path(), cenv).await;
    let (_, sid) = start_run(&c.url, "stalled").await;
    let _stalled = stalled_write(&c.url, &sid).await;
    let mut sse = Sse::open(&format!("{}/sse/sessions", c.url), None).await;
    assert_eq!(sse.next().await.unwrap().event, "init");
    let t0 = Instant::now();
    signal(&c.child, nix::sys::signal::Signal::SIGTERM);
    let logs = Logs {
        dir: c.data_dir.clone(),
        prefix: "coordinator.",
    };
    exits_within(&mut c.child, t0, Duration::from_secs(2), &logs).await;
    let log = logs.read();
    // The stream ended in time; the write that never arrived whole is what was cut.
    assert!(
        log.contains("coordinator stopped at the shutdown bound")
            && log.contains("cut: 1× POST /sessions/{id}/events"),
        "{log}"
    );
    let cut_line = log.lines().find(|l| l.contains("cut:")).unwrap();
    assert!(!cut_line.contains("/sse/sessions"), "{cut_line}");
    assert!(sse.next().await.is_none(), "the stream ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_cuts_at_once_instead_of_waiting_for_the_bound() {
    let dir = tempdir();
    let mut cenv = fast_env();
    // Far beyond the test's patience: only the second signal can end this stop in time.
    cenv.extend(env(&[("AOF_SHUTDOWN_TIMEOUT", "600")]));
    let mut c = Coordinator::start(dir.path(), cenv).await;
    let (_, sid) = start_run(&c.url, "stalled").await;
    let _stalled = stalled_write(&c.url, &sid).await;
    let t0 = Instant::now();
    signal(&c.child, nix::sys::signal::Signal::SIGTERM);
    let logs = Logs {
        dir: c.data_dir.clone(),
        prefix: "coordinator.",
    };
    wait_for("the drain to wait for the stalled write", || async {
        logs.read()
            .contains("draining: waiting for open requests")
            .then_some(())
    })
    .await;
    signal(&c.child, nix::sys::signal::Signal::SIGTERM);
    exits_within(&mut c.child, t0, Duration::ZERO, &logs).await;
    let log = logs.read();
    assert!(log.contains("second signal"), "{log}");
    assert!(log.contains("cut: 1× POST /sessions/{id}/events"), "{log}");
}
