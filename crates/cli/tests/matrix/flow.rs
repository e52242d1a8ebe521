//! A person starts a session from a room, reads the echo agent's answer in its thread,
//! continues it with a plain reply, stops a long run; a stranger and a viewer are
//! refused and start nothing.

use serde_json::Value;

use crate::{harness::*, homeserver::synapse, Cast};

async fn session(url: &str, sid: &str) -> (u16, Value) {
    call("GET", &format!("{url}/sessions/{sid}"), None).await
}

async fn session_count(url: &str) -> usize {
    let (st, b) = call("GET", &format!("{url}/sessions"), None).await;
    assert_eq!(st, 200, "{b}");
    b["sessions"].as_array().unwrap().len()
}

#[tokio::test]
async fn chat_starts_continues_and_stops_sessions_and_refuses_strangers() {
    let Some((hs, _, _)) = synapse() else {
        return;
    };
    let dir = tempdir();
    let up = Up::start(dir.path()).await;
    let cast = Cast::new().await;
    let bridge = cast.bridge(&dir.path().join("bridge"), &hs, &up.url).await;
    let room = cast.room(&[&cast.vic, &cast.mallory]).await;
    let Cast {
        bot,
        alice,
        vic,
        mallory,
    } = &cast;

    // Start: the answer, then the result, in the command's thread.
    let root = alice.say(&room, "!aof run echo hello from chat").await;
    let sid = aof_matrix_bridge::bridge::session_id_for(root.as_str());
    // The reply to the command, the answer and the result.
    let thread = alice.wait_thread_len(&room, &root, &bot.user_id, 3).await;
    assert!(
        thread
            .iter()
            .any(|m| m.starts_with(&format!("▶️ {sid} started with echo"))),
        "{thread:?}\n{}",
        bridge.log()
    );
    let events: Vec<&String> = thread.iter().filter(|m| !m.starts_with("▶️")).collect();
    assert_eq!(events, ["hello from chat", "✅ done"], "{thread:?}");
    let (st, s) = session(&up.url, &sid).await;
    assert_eq!(st, 200, "{s}");
    assert_eq!(s["session"]["agent_name"], "echo", "{s}");

    // Continue: a plain reply in the thread is the next prompt.
    alice.reply_in_thread(&room, &root, "and once more").await;
    // The reply to it, the answer and the second result.
    let thread = alice.wait_thread_len(&room, &root, &bot.user_id, 6).await;
    assert!(
        thread
            .iter()
            .any(|m| m.starts_with(&format!("↩️ continuing {sid}"))),
        "{thread:?}"
    );
    let events: Vec<&String> = thread
        .iter()
        .filter(|m| !m.starts_with("▶️") && !m.starts_with("↩️"))
        .collect();
    assert_eq!(
        events,
        ["hello from chat", "✅ done", "and once more", "✅ done"],
        "{thread:?}"
    );
    assert_eq!(runs_of(&up.url, &sid).await.len(), 2);

    // A stranger: refused, nothing started, nothing resumed.
    let before = session_count(&up.url).await;
    let bad = mallory.say(&room, "!aof run echo pwned").await;
    let refusal = alice
        .wait_thread(&room, &bad, &bot.user_id, "the stranger's refusal", |m| {
            m.starts_with("⛔")
        })
        .await;
    assert!(
        refusal[0].contains(mallory.id()) && refusal[0].contains("not allowed"),
        "{refusal:?}"
    );
    let hijack = mallory
        .reply_in_thread(&room, &root, "hijack this session")
        .await;
    let thread = alice
        .wait_thread(&room, &root, &bot.user_id, "the hijack refusal", |m| {
            m.starts_with("⛔") && m.contains("mallory")
        })
        .await;
    assert!(
        !thread.iter().any(|m| m == "hijack this session"),
        "{thread:?}"
    );
    // A viewer may read, not act.
    let viewer = vic.say(&room, "!aof run echo as a viewer").await;
    let vref = alice
        .wait_thread(&room, &viewer, &bot.user_id, "the viewer's refusal", |m| {
            m.starts_with("⛔")
        })
        .await;
    assert!(
        vref[0].contains("viewer") && vref[0].contains("operator"),
        "{vref:?}"
    );
    // An agent the bridge does not open.
    let closed = alice.say(&room, "!aof run coder rm everything").await;
    let cref = alice
        .wait_thread(
            &room,
            &closed,
            &bot.user_id,
            "the closed agent's refusal",
            |m| m.starts_with("⛔"),
        )
        .await;
    assert!(cref[0].contains("'coder' is not open"), "{cref:?}");
    assert_eq!(
        session_count(&up.url).await,
        before,
        "a refused command started a session"
    );
    assert_eq!(
        runs_of(&up.url, &sid).await.len(),
        2,
        "a refused reply resumed the session"
    );
    for ev in [&bad, &viewer, &closed] {
        let (st, _) = session(
            &up.url,
            &aof_matrix_bridge::bridge::session_id_for(ev.as_str()),
        )
        .await;
        assert_eq!(st, 404, "a refused command made a session");
    }
    let _ = hijack;
    // A stranger's invitation is declined: the bridge does not join their room.
    let theirs = mallory.create_room(&[bot]).await;
    mallory
        .wait_membership(&theirs, &bot.user_id, "leave")
        .await;

    // Stop a long run from its thread.
    let long = alice
        .say(
            &room,
            "!aof run echo !echo {\"echo_events\": 200, \"echo_delay_ms\": 1000}\nlong",
        )
        .await;
    let lsid = aof_matrix_bridge::bridge::session_id_for(long.as_str());
    alice
        .wait_thread(
            &room,
            &long,
            &bot.user_id,
            "the long run's first message",
            |m| m == "long [1]",
        )
        .await;
    alice.reply_in_thread(&room, &long, "!aof stop").await;
    // The answer to the command and the run's end are posted by two loops: either
    // may come first.
    alice
        .wait_thread(&room, &long, &bot.user_id, "the answer to !aof stop", |m| {
            m.starts_with(&format!("⏹️ stopping {lsid}"))
        })
        .await;
    let thread = alice
        .wait_thread(&room, &long, &bot.user_id, "the stop in the thread", |m| {
            m == "⏹️ stopped"
        })
        .await;
    wait_session(&up.url, &lsid, "stopped").await;
    let said = thread.iter().filter(|m| m.starts_with("long [")).count();
    assert!(said < 200, "the run was not stopped: {said} messages");

    // A failing run says why.
    let failing = alice
        .say(
            &room,
            "!aof run echo !echo {\"echo_fail\": \"the disk is full\"}\ntry",
        )
        .await;
    alice
        .wait_thread(&room, &failing, &bot.user_id, "the failure", |m| {
            m.starts_with("❌") && m.contains("the disk is full")
        })
        .await;

    // Every message of the first thread is there once (the homeserver's 429s were
    // waited out, not dropped or doubled).
    // The bridge never logs its access token.
    let log = bridge.log();
    assert!(log.contains("matrix bridge up"), "{log}");
    assert!(!log.contains(&bot.token), "the access token is in the log");
    let thread = alice.thread(&room, &root, &bot.user_id).await;
    let mut seen = std::collections::HashSet::new();
    // (Each run ends with its own "✅ done".)
    assert_eq!(
        thread.iter().filter(|m| *m == "✅ done").count(),
        2,
        "{thread:?}"
    );
    for m in thread
        .iter()
        .filter(|m| !m.starts_with("⛔") && *m != "✅ done")
    {
        assert!(seen.insert(m.clone()), "posted twice: {m}\n{thread:?}");
    }
}
