//! Stopping `aof up` (its runner's drain first; a live dashboard page in chromium; a
//! second Ctrl-C) and the standalone `aof dashboard`.

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Instant,
};

use serde_json::json;

use super::support::*;
use crate::harness::*;

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
    let logs = up_logs(dir.path());
    let mut up = Up::start_with(dir.path(), 0, &args, &uenv, "up.0.log").await;
    let url = up.url.clone();
    let (_, sid) = start_run(&url, "held").await;
    wait_text(&url, &sid, "started held").await;

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

    let t0 = interrupted_and_draining(&up).await;
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
    wait_text(&url, &sid, "done after the restart").await;
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
        // The raw view has a row per stored event (the folded one merges some).
        b.click("#tl-raw").await;
        let want = events(&url, &sid).await.len();
        b.wait_js(
            &format!("document.querySelectorAll('#timeline > li').length === {want}"),
            "every event in the raw timeline",
        )
        .await;
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
    let logs = up_logs(dir.path());
    let mut up = Up::start_with(dir.path(), 0, &args, &[], "up.0.log").await;
    let url = up.url.clone();
    let (run_id, sid) = start_run(&url, "forever").await;
    wait_text(&url, &sid, "started").await;
    let t0 = interrupted_and_draining(&up).await;
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
    let t1 = interrupted_and_draining(&up).await;
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
    let t0 = signalled(&dash, nix::sys::signal::Signal::SIGTERM);
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
