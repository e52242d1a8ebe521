//! With auth on, the bridge acts with its own AOF key: an operator key starts sessions
//! for allowed people; a bridge given only a viewer key starts nothing and says why in
//! the thread (the coordinator's refusal, not a silent failure).

use crate::{
    harness::*,
    homeserver::{synapse, unique, Person},
    BridgeProc,
};

async fn get(url: &str, key: &str) -> (u16, serde_json::Value) {
    let resp = client().get(url).bearer_auth(key).send().await.unwrap();
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn with_auth_on_the_bridge_acts_with_its_own_key() {
    if synapse().is_none() {
        return;
    }
    let dir = tempdir();
    let data = dir.path().join("coord");
    std::fs::create_dir_all(&data).unwrap();
    let admin = offline_key(&data, "admin");
    let operator = offline_key(&data, "operator");
    let viewer = offline_key(&data, "viewer");
    let coord = Coordinator::start(dir.path(), vec![("AUTH_ENABLED".into(), "true".into())]).await;
    let alice = Person::register(&unique("alice")).await;

    // An operator key: the session is created, as that key.
    let bot = Person::register(&unique("aofbot")).await;
    let bdir = dir.path().join("bridge-operator");
    std::fs::create_dir_all(&bdir).unwrap();
    std::fs::write(bdir.join("aof-key"), &operator).unwrap();
    let bridge = BridgeProc::start(&bdir, &coord.url, &bot, &[(&alice, "operator")]).await;
    let room = alice.create_room(&[&bot]).await;
    alice.wait_member(&room, &bot.user_id).await;
    let root = alice.say(&room, "!aof run echo with a key").await;
    let sid = aof_matrix_bridge::bridge::session_id_for(root.as_str());
    let thread = alice
        .wait_thread(&room, &root, &bot.user_id, "the start", |m| {
            m.starts_with("▶️")
        })
        .await;
    assert!(
        thread
            .iter()
            .any(|m| m.starts_with("▶️") && m.contains(&sid)),
        "{thread:?}\n{}",
        bridge.log()
    );
    let (st, s) = get(&format!("{}/sessions/{sid}", coord.url), &admin).await;
    assert_eq!(st, 200, "{s}");
    let log = bridge.log();
    assert!(
        !log.contains(&operator),
        "the AOF key is in the bridge's log"
    );

    // A viewer key: refused by the coordinator, said in the thread, nothing created.
    let bot2 = Person::register(&unique("aofbot")).await;
    let vdir = dir.path().join("bridge-viewer");
    std::fs::create_dir_all(&vdir).unwrap();
    std::fs::write(vdir.join("aof-key"), &viewer).unwrap();
    let _weak = BridgeProc::start(&vdir, &coord.url, &bot2, &[(&alice, "operator")]).await;
    let room2 = alice.create_room(&[&bot2]).await;
    alice.wait_member(&room2, &bot2.user_id).await;
    let root2 = alice.say(&room2, "!aof run echo with a weak key").await;
    let thread = alice
        .wait_thread(&room2, &root2, &bot2.user_id, "the refusal", |m| {
            m.starts_with("Could not start")
        })
        .await;
    assert!(thread[0].contains("403"), "{thread:?}");
    let sid2 = aof_matrix_bridge::bridge::session_id_for(root2.as_str());
    let (st, _) = get(&format!("{}/sessions/{sid2}", coord.url), &admin).await;
    assert_eq!(st, 404, "a viewer key made a session");
}
