//! The orchestrator MCP server at `/mcp`, driven by a real MCP client (rmcp, streamable
//! HTTP) against a real coordinator and runner: children, their tree, and
//! `async_callback` delivery that survives a coordinator crash.

use serde_json::json;

use crate::{harness::*, mcp_client::*};

/// Echoes the prompt's first line; `wait <file>` first blocks until that file exists.
fn echo_runner_args(script_dir: &std::path::Path) -> Vec<String> {
    let script = format!(
        r#"read p; case "$p" in wait*) while [ ! -f "{d}/${{p#wait }}" ]; do sleep 0.05; done;; esac; echo "you said: $p""#,
        d = script_dir.display()
    );
    vec![
        "--executor".into(),
        "command".into(),
        "--command".into(),
        format!("sh -c '{}'", script.replace('\'', "'\\''")),
    ]
}

async fn start_plain(url: &str, prompt: &str) -> String {
    let (st, b) = call(
        "POST",
        &format!("{url}/runs"),
        Some(json!({"type": "start_session", "parameters": {"prompt": prompt}})),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    b["session_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tools_start_watch_and_steer_children() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let args = echo_runner_args(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _r = Runner::start(&c.url, dir.path(), "r1", &args).await;
    let parent = start_plain(&c.url, "parent").await;
    wait_session(&c.url, &parent, "finished").await;

    let mcp = connect(&c.url, Some(&parent)).await;
    let names: Vec<String> = mcp
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    for want in [
        "list_agent_blueprints",
        "list_agent_sessions",
        "start_agent_session",
        "resume_agent_session",
        "get_agent_session_status",
        "get_agent_session_result",
        "stop_agent_session",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }

    // sync: the call returns the child's result.
    let (err, v) = tool(&mcp, "start_agent_session", json!({"prompt": "hello"})).await;
    assert!(!err, "{v}");
    assert_eq!(v["status"], "finished", "{v}");
    assert_eq!(v["result"], "you said: hello");
    let first = v["session_id"].as_str().unwrap().to_string();

    // async_poll: an id at once; status and result by polling.
    let (err, v) = tool(
        &mcp,
        "start_agent_session",
        json!({"prompt": "later", "mode": "async_poll"}),
    )
    .await;
    assert!(!err, "{v}");
    let second = v["session_id"].as_str().unwrap().to_string();
    wait_for("async child to finish", || async {
        let (_, v) = tool(
            &mcp,
            "get_agent_session_status",
            json!({"session_id": second}),
        )
        .await;
        (v["status"] == "finished").then_some(())
    })
    .await;
    let (_, v) = tool(
        &mcp,
        "get_agent_session_result",
        json!({"session_id": second}),
    )
    .await;
    assert_eq!(v["result"], "you said: later");

    // resume a child (sync) continues that same session.
    let (err, v) = tool(
        &mcp,
        "resume_agent_session",
        json!({"session_id": first, "prompt": "again"}),
    )
    .await;
    assert!(!err, "{v}");
    assert_eq!(v["result"], "you said: again");
    assert_eq!(runs_of(&c.url, &first).await.len(), 2);

    // The tree: both are children of the calling session, over MCP and REST.
    let (_, v) = tool(&mcp, "list_agent_sessions", json!({})).await;
    let mut kids: Vec<String> = v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_string())
        .collect();
    kids.sort();
    let mut want = vec![first.clone(), second.clone()];
    want.sort();
    assert_eq!(kids, want);
    let (_, b) = call("GET", &format!("{}/sessions?parent={parent}", c.url), None).await;
    let mut rest: Vec<String> = b["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_string())
        .collect();
    rest.sort();
    assert_eq!(rest, want);
    let (_, b) = call("GET", &format!("{}/sessions/{first}", c.url), None).await;
    assert_eq!(b["session"]["parent_session_id"], parent.as_str());

    // Stop a running child: it ends stopped.
    let (_, v) = tool(
        &mcp,
        "start_agent_session",
        json!({"prompt": "wait never", "mode": "async_poll"}),
    )
    .await;
    let third = v["session_id"].as_str().unwrap().to_string();
    wait_session(&c.url, &third, "running").await;
    let (err, v) = tool(&mcp, "stop_agent_session", json!({"session_id": third})).await;
    assert!(!err, "{v}");
    wait_session(&c.url, &third, "stopped").await;

    // Bad input: clear tool errors with stable codes, nothing created.
    let before = runs_of(&c.url, &first).await.len();
    let (err, v) = tool(
        &mcp,
        "resume_agent_session",
        json!({"session_id": "ses_nope", "prompt": "x"}),
    )
    .await;
    assert!(err);
    assert_eq!(v["code"], "session_not_found", "{v}");
    let (err, v) = tool(
        &mcp,
        "start_agent_session",
        json!({"prompt": "x", "agent_name": "no-such-agent"}),
    )
    .await;
    assert!(err);
    assert_eq!(v["code"], "blueprint_not_found", "{v}");
    assert_eq!(runs_of(&c.url, &first).await.len(), before);
    mcp.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_callbacks_queue_while_busy_survive_a_crash_and_arrive_once() {
    let dir = tempdir();
    let mut c = Coordinator::start(dir.path(), fast_env()).await;
    let args = echo_runner_args(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _r = Runner::start(&c.url, dir.path(), "r1", &args).await;

    // The parent is busy (blocked on a file) while its children finish.
    let parent = start_plain(&c.url, "wait parent-go").await;
    wait_session(&c.url, &parent, "running").await;
    let mcp = connect(&c.url, Some(&parent)).await;
    let mut kids = Vec::new();
    for name in ["child A", "child B"] {
        let (err, v) = tool(
            &mcp,
            "start_agent_session",
            json!({"prompt": name, "mode": "async_callback"}),
        )
        .await;
        assert!(!err, "{v}");
        kids.push(v["session_id"].as_str().unwrap().to_string());
    }
    for k in &kids {
        wait_session(&c.url, k, "finished").await;
    }
    mcp.cancel().await.unwrap();
    // Busy parent: nothing delivered yet.
    assert_eq!(runs_of(&c.url, &parent).await.len(), 1);

    // Crash with the callbacks recorded but undelivered, then come back.
    c.kill9().await;
    c.restart().await;
    std::fs::write(dir.path().join("parent-go"), "").unwrap();

    // The parent ends its run, then is resumed once with both results together.
    let resumed = wait_for("the parent's callback run to complete", || async {
        let runs = runs_of(&c.url, &parent).await;
        (runs.len() >= 2 && runs[1]["status"] == "completed").then_some(runs)
    })
    .await;
    assert_eq!(resumed.len(), 2, "{resumed:?}");
    assert_eq!(resumed[1]["type"], "resume_session");
    let prompt = resumed[1]["parameters"]["prompt"].as_str().unwrap();
    for (k, text) in kids.iter().zip(["you said: child A", "you said: child B"]) {
        let tag = format!("<agent-callback session=\"{k}\" status=\"finished\">\n{text}\n");
        assert_eq!(prompt.matches(&tag).count(), 1, "{prompt}");
    }
    wait_session(&c.url, &parent, "finished").await;

    // Another crash: nothing is delivered twice. A new child's callback (the parent is
    // idle now) arrives alone.
    c.kill9().await;
    c.restart().await;
    let mcp = connect(&c.url, Some(&parent)).await;
    let (_, v) = tool(
        &mcp,
        "start_agent_session",
        json!({"prompt": "child C", "mode": "async_callback"}),
    )
    .await;
    let kid_c = v["session_id"].as_str().unwrap().to_string();
    let runs = wait_for("the third parent run to complete", || async {
        let runs = runs_of(&c.url, &parent).await;
        (runs.len() >= 3 && runs[2]["status"] == "completed").then_some(runs)
    })
    .await;
    assert_eq!(runs.len(), 3, "{runs:?}");
    let prompt = runs[2]["parameters"]["prompt"].as_str().unwrap();
    assert!(prompt.contains(&format!("session=\"{kid_c}\"")), "{prompt}");
    for k in &kids {
        assert!(!prompt.contains(k.as_str()), "delivered twice: {prompt}");
    }
    mcp.cancel().await.unwrap();
}
