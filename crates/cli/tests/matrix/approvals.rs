//! A tool call waiting for approval shows in the session's thread with its input;
//! `!aof deny reason` and `!aof approve` decide it as the API would, for operators only.
//! The run is held by a protocol-speaking runner in the test (it holds the lease and
//! asks, as an agent's runner does before a listed tool runs).

use serde_json::{json, Value};

use crate::{
    harness::*,
    homeserver::{synapse, unique, Person},
    BridgeProc,
};

fn lease(run: &Value) -> [(&str, &str); 2] {
    [
        ("x-aof-lease-token", run["lease_token"].as_str().unwrap()),
        ("x-aof-run-id", run["run_id"].as_str().unwrap()),
    ]
}

async fn ask(url: &str, sid: &str, run: &Value, command: &str, key: &str) -> String {
    let (st, b) = call_h(
        "POST",
        &format!("{url}/sessions/{sid}/approvals"),
        Some(json!({"run_id": run["run_id"], "tool_name": "Bash",
                    "tool_input": {"command": command}, "request_key": key})),
        &lease(run),
    )
    .await;
    assert!(st == 200 || st == 201, "{st} {b}");
    b["approval_id"].as_str().unwrap().to_string()
}

async fn approval(url: &str, id: &str) -> Value {
    let (st, b) = call("GET", &format!("{url}/approvals/{id}"), None).await;
    assert_eq!(st, 200, "{b}");
    b
}

#[tokio::test]
async fn approvals_are_decided_from_the_thread_by_operators_only() {
    if synapse().is_none() {
        return;
    }
    let dir = tempdir();
    // Default lease TTL: the test runner does not heartbeat.
    let coord = Coordinator::start(dir.path(), Vec::new()).await;
    let url = coord.url.clone();
    let runner = register(&url, "approvals").await;
    let bot = Person::register(&unique("aofbot")).await;
    let alice = Person::register(&unique("alice")).await;
    let vic = Person::register(&unique("vic")).await;
    let mallory = Person::register(&unique("mallory")).await;
    let bridge = BridgeProc::start(
        &dir.path().join("bridge"),
        &url,
        &bot,
        &[(&alice, "operator"), (&vic, "viewer")],
    )
    .await;
    let room = alice.create_room(&[&bot, &vic, &mallory]).await;
    vic.join(&room).await;
    mallory.join(&room).await;
    alice.wait_member(&room, &bot.user_id).await;

    let root = alice.say(&room, "!aof run t clean up the tmp dir").await;
    let sid = aof_matrix_bridge::bridge::session_id_for(root.as_str());
    let run = wait_for("the run for the test runner", || async {
        let (st, b) = call(
            "GET",
            &format!("{url}/runner/runs?runner_id={runner}"),
            None,
        )
        .await;
        (st == 200 && b.get("run").is_some()).then(|| b["run"].clone())
    })
    .await;
    assert_eq!(run["session_id"], sid.as_str(), "{run}\n{}", bridge.log());
    let rid = run["run_id"].as_str().unwrap();
    let (st, b) = call_h(
        "POST",
        &format!("{url}/runner/runs/{rid}/started"),
        Some(json!({"runner_id": runner})),
        &lease(&run),
    )
    .await;
    assert_eq!(st, 200, "{b}");

    let first = ask(&url, &sid, &run, "rm -rf /tmp/scratch", "call-1").await;
    let thread = alice
        .wait_thread(&room, &root, &bot.user_id, "the approval request", |m| {
            m.starts_with("⏸️")
        })
        .await;
    let asked = thread.iter().find(|m| m.starts_with("⏸️")).unwrap();
    assert!(
        asked.contains(&first) && asked.contains("rm -rf /tmp/scratch") && asked.contains("Bash"),
        "{asked}"
    );

    // A stranger and a viewer: refused, the approval stays pending.
    mallory.reply_in_thread(&room, &root, "!aof approve").await;
    vic.reply_in_thread(&room, &root, "!aof approve").await;
    alice
        .wait_thread(&room, &root, &bot.user_id, "both refusals", |m| {
            m.contains("viewer")
        })
        .await;
    let thread = alice
        .wait_thread(&room, &root, &bot.user_id, "the stranger's refusal", |m| {
            m.contains("not allowed")
        })
        .await;
    assert_eq!(
        thread.iter().filter(|m| m.starts_with("⛔")).count(),
        2,
        "{thread:?}"
    );
    assert_eq!(approval(&url, &first).await["status"], "pending");

    // The operator denies with a reason: the agent is told it, and who said it.
    alice
        .reply_in_thread(&room, &root, "!aof deny not on the shared box")
        .await;
    let denied = wait_for("the denial", || async {
        let a = approval(&url, &first).await;
        (a["status"] == "denied").then_some(a)
    })
    .await;
    let msg = denied["message"].as_str().unwrap();
    assert!(
        msg.contains("not on the shared box") && msg.contains(alice.id()),
        "{denied}"
    );
    alice
        .wait_thread(
            &room,
            &root,
            &bot.user_id,
            "the denial in the thread",
            |m| m.starts_with("✖️ denied"),
        )
        .await;

    // The next call is approved.
    let second = ask(&url, &sid, &run, "ls /tmp", "call-2").await;
    alice
        .wait_thread(&room, &root, &bot.user_id, "the second request", |m| {
            m.contains(&second)
        })
        .await;
    alice.reply_in_thread(&room, &root, "!aof approve").await;
    wait_for("the approval", || async {
        (approval(&url, &second).await["status"] == "approved").then_some(())
    })
    .await;
    alice
        .wait_thread(
            &room,
            &root,
            &bot.user_id,
            "the approval in the thread",
            |m| m.starts_with("✔️ approved"),
        )
        .await;
    alice
        .wait_thread(
            &room,
            &root,
            &bot.user_id,
            "the answer to the approve",
            |m| m.starts_with("✔️ Bash approved for") && m.contains("alice"),
        )
        .await;
    // Nothing left: a late approve says so instead of deciding something else.
    alice.reply_in_thread(&room, &root, "!aof approve").await;
    alice
        .wait_thread(&room, &root, &bot.user_id, "nothing waiting", |m| {
            m.starts_with("Nothing in this session")
        })
        .await;
}
