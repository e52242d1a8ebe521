//! A tool call waiting for approval shows in the session's thread with its input;
//! `!aof deny reason` and `!aof approve` decide it as the API would, for operators only.
//! The run is held by a protocol-speaking runner in the test (it holds the lease and
//! asks, as an agent's runner does before a listed tool runs).

use crate::{harness::*, homeserver::synapse, Cast};

#[tokio::test]
async fn approvals_are_decided_from_the_thread_by_operators_only() {
    let Some((hs, _, _)) = synapse() else {
        return;
    };
    let dir = tempdir();
    // Default lease TTL: the test runner does not heartbeat.
    let coord = Coordinator::start(dir.path(), Vec::new()).await;
    let url = coord.url.clone();
    let runner = register(&url, "approvals").await;
    let cast = Cast::new().await;
    let bridge = cast.bridge(&dir.path().join("bridge"), &hs, &url).await;
    let room = cast.room(&[&cast.vic, &cast.mallory]).await;
    let Cast {
        bot,
        alice,
        vic,
        mallory,
    } = &cast;

    let root = alice.say(&room, "!aof run t clean up the tmp dir").await;
    let sid = aof_matrix_bridge::bridge::session_id_for(root.as_str());
    let run = claim_started(&url, &runner).await;
    assert_eq!(run["session_id"], sid.as_str(), "{run}\n{}", bridge.log());

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
