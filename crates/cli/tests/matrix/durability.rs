//! `kill -9` of the bridge in the middle of a session: after a restart every event of
//! the session is in the room exactly once, and the command is not run again.

use crate::{harness::*, homeserver::synapse, Cast};

#[tokio::test]
async fn a_bridge_killed_mid_session_posts_every_event_once() {
    let Some((hs, _, _)) = synapse() else {
        return;
    };
    let dir = tempdir();
    let up = Up::start(dir.path()).await;
    let cast = Cast::new().await;
    let mut bridge = cast.bridge(&dir.path().join("bridge"), &hs, &up.url).await;
    let room = cast.room(&[]).await;
    let Cast { bot, alice, .. } = &cast;

    const N: usize = 12;
    let root = alice
        .say(
            &room,
            &format!("!aof run echo !echo {{\"echo_events\": {N}, \"echo_delay_ms\": 300}}\nstep"),
        )
        .await;
    let sid = aof_matrix_bridge::bridge::session_id_for(root.as_str());
    alice
        .wait_thread(&room, &root, &bot.user_id, "the first steps", |m| {
            m == "step [2]"
        })
        .await;
    bridge.kill9().await;
    // The session goes on without the bridge; its events wait in AOF.
    wait_session(&up.url, &sid, "finished").await;
    let before = alice.thread(&room, &root, &bot.user_id).await;
    assert!(
        !before.iter().any(|m| m.starts_with("✅")),
        "finished before the kill: {before:?}"
    );

    bridge.restart().await;
    alice
        .wait_thread(
            &room,
            &root,
            &bot.user_id,
            "the rest after the restart",
            |m| m.starts_with("✅"),
        )
        .await;
    // The reply to the command may come last (its loop is not the feed's).
    let thread = alice
        .wait_thread_len(&room, &root, &bot.user_id, N + 2)
        .await;
    let mut want: Vec<String> = vec![];
    for i in 1..=N {
        want.push(format!("step [{i}]"));
    }
    for w in &want {
        assert_eq!(
            thread.iter().filter(|m| *m == w).count(),
            1,
            "{w} not exactly once: {thread:?}\n{}",
            bridge.log()
        );
    }
    assert_eq!(
        thread.iter().filter(|m| m.starts_with("▶️")).count(),
        1,
        "{thread:?}"
    );
    assert_eq!(
        thread.iter().filter(|m| m.starts_with("✅")).count(),
        1,
        "{thread:?}"
    );
    // In order, and nothing else was posted.
    let steps: Vec<&String> = thread.iter().filter(|m| m.starts_with("step [")).collect();
    assert_eq!(steps, want.iter().collect::<Vec<_>>(), "{thread:?}");
    assert_eq!(thread.len(), N + 2, "{thread:?}");
    // The homeserver did limit the bridge (the backlog after the restart is more than
    // its burst of 5): its 429s were waited out, not dropped.
    let hs_log = std::fs::read_to_string(
        std::env::var("AOF_TEST_SYNAPSE_LOG").expect("AOF_TEST_SYNAPSE_LOG"),
    )
    .unwrap();
    let limited = hs_log
        .lines()
        .filter(|l| {
            l.contains(&format!("{{{}}}", bot.id()))
                && l.contains(" 429 ")
                && l.contains("/send/m.room.message/")
        })
        .count();
    assert!(limited > 0, "the homeserver never answered the bridge 429");
    // The command was not run again after the restart.
    assert_eq!(runs_of(&up.url, &sid).await.len(), 1);
}

/// The homeserver goes away mid-session (a relay in front of it is cut): the bridge
/// retries with backoff, and once it is back every event arrives once, in order.
#[tokio::test]
async fn a_homeserver_outage_delays_posts_and_loses_none() {
    let Some((hs, _, _)) = synapse() else {
        return;
    };
    let dir = tempdir();
    let up = Up::start(dir.path()).await;
    let relay = crate::relay::Relay::start(&hs).await;
    let cast = Cast::new().await;
    let bridge = cast
        .bridge(&dir.path().join("bridge"), &relay.url, &up.url)
        .await;
    let room = cast.room(&[]).await;
    let Cast { bot, alice, .. } = &cast;

    const N: usize = 6;
    let root = alice
        .say(
            &room,
            &format!("!aof run echo !echo {{\"echo_events\": {N}, \"echo_delay_ms\": 700}}\nbeat"),
        )
        .await;
    let sid = aof_matrix_bridge::bridge::session_id_for(root.as_str());
    alice
        .wait_thread(&room, &root, &bot.user_id, "the first beat", |m| {
            m == "beat [1]"
        })
        .await;
    relay.cut();
    wait_session(&up.url, &sid, "finished").await;
    wait_for("the bridge to notice the outage", || async {
        let log = bridge.log();
        (log.contains("posting to the homeserver failed; retrying")
            || log.contains("matrix sync failed"))
        .then_some(())
    })
    .await;
    relay.restore();
    alice
        .wait_thread(
            &room,
            &root,
            &bot.user_id,
            "the rest after the outage",
            |m| m.starts_with("✅"),
        )
        .await;
    // The reply to the command may come last (its loop is not the feed's).
    let thread = alice
        .wait_thread_len(&room, &root, &bot.user_id, N + 2)
        .await;
    let beats: Vec<String> = thread
        .iter()
        .filter(|m| m.starts_with("beat ["))
        .cloned()
        .collect();
    let want: Vec<String> = (1..=N).map(|i| format!("beat [{i}]")).collect();
    assert_eq!(beats, want, "{thread:?}\n{}", bridge.log());
    assert_eq!(thread.len(), N + 2, "{thread:?}");
}
