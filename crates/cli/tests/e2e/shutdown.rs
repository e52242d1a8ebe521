//! Stopping (issue #28): SIGTERM/SIGINT ends every stream and the process exits 0
//! within `coordinator.shutdown_timeout`, with nothing acknowledged lost — for `aof
//! coordinator` (100 SSE subscribers, 20 parked long-polls, an MCP call waiting, writes
//! in flight), `aof up` (its runner's drain first; a live dashboard page in chromium;
//! a second Ctrl-C), `aof dashboard` and `aof runner`. Timings are asserted only as
//! upper bounds with room for a loaded machine; "in time" is read from the log, which
//! names anything the bound had to cut.

mod support;
mod up;

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{harness::*, mcp_client::*};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_streams_polls_and_mcp_in_time_and_loses_no_acknowledged_event() {
    let dir = tempdir();
    let mut c = fast_coordinator(
        dir.path(),
        &[
            // Parked polls would otherwise answer 204 on their own within the test.
            ("AOF_POLL_TIMEOUT", "300"),
            ("AOF_MAX_STREAMS_PER_KEY", "256"),
            ("AOF_SHUTDOWN_TIMEOUT", "10"),
        ],
    )
    .await;
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

    let t0 = signalled(&c.child, nix::sys::signal::Signal::SIGTERM);
    let logs = coordinator_logs(&c);
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
async fn runner_repolls_at_once_on_a_draining_answer_and_stops_in_time_itself() {
    let dir = tempdir();
    let mut c = fast_coordinator(dir.path(), &[("AOF_POLL_TIMEOUT", "300")]).await;
    let mut r = Runner::start(&c.url, dir.path(), "r1", &[]).await;
    wait_for("the runner's long-poll", || async {
        (gauge(&c.url, "aof_runner_polls_waiting").await == 1).then_some(())
    })
    .await;
    let t0 = signalled(&c.child, nix::sys::signal::Signal::SIGTERM);
    let logs = coordinator_logs(&c);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_bound_what_is_still_open_is_cut_and_named_and_the_exit_is_clean() {
    let dir = tempdir();
    let mut c = fast_coordinator(dir.path(), &[("AOF_SHUTDOWN_TIMEOUT", "2")]).await;
    let _stalled = stalled_write(&c.url).await;
    let mut sse = Sse::open(&format!("{}/sse/sessions", c.url), None).await;
    assert_eq!(sse.next().await.unwrap().event, "init");
    let t0 = signalled(&c.child, nix::sys::signal::Signal::SIGTERM);
    let logs = coordinator_logs(&c);
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
    // Far beyond the test's patience: only the second signal can end this stop in time.
    let mut c = fast_coordinator(dir.path(), &[("AOF_SHUTDOWN_TIMEOUT", "600")]).await;
    let _stalled = stalled_write(&c.url).await;
    let t0 = signalled(&c.child, nix::sys::signal::Signal::SIGTERM);
    let logs = coordinator_logs(&c);
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
