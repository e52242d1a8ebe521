//! The real homeserver of these tests (Synapse, started by scripts/ci/synapse.sh) and
//! people on it: accounts made with Synapse's own `register_new_matrix_user`, each a
//! real matrix-sdk client that makes rooms, writes messages and threads, and reads them.

use std::time::Duration;

use matrix_sdk::{
    ruma::{
        api::client::{
            membership::{get_member_events, joined_members},
            message::get_message_events,
            room::create_room,
        },
        events::{
            relation::Thread,
            room::message::{MessageType, Relation, RoomMessageEventContent},
            AnyMessageLikeEvent, AnyTimelineEvent, MessageLikeEvent,
        },
        OwnedEventId, OwnedRoomId, OwnedUserId, UserId,
    },
    Client,
};

use crate::harness::wait_for;

/// `(url, registration secret, register_new_matrix_user)`; with CI=true a missing
/// homeserver fails the test instead of skipping it.
pub fn synapse() -> Option<(String, String, String)> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("AOF_TEST_SYNAPSE_URL"),
        get("AOF_TEST_SYNAPSE_SECRET"),
        get("AOF_TEST_SYNAPSE_REGISTER"),
    ) {
        (Some(u), Some(s), Some(r)) => Some((u, s, r)),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but no homeserver: eval \"$(bash scripts/ci/synapse.sh start)\"")
        }
        _ => {
            eprintln!(
                "skipped: no AOF_TEST_SYNAPSE_URL (eval \"$(bash scripts/ci/synapse.sh start)\")"
            );
            None
        }
    }
}

/// A fresh, unique local part (the homeserver outlives each test).
pub fn unique(name: &str) -> String {
    format!(
        "{name}_{}",
        uuid_like(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
        )
    )
}

fn uuid_like(t: Duration) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}{}_{}",
        t.as_micros(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A user on the test homeserver with a logged-in client.
pub struct Person {
    pub client: Client,
    pub user_id: OwnedUserId,
    pub token: String,
}

impl Person {
    pub async fn register(name: &str) -> Person {
        let (url, secret, register) = synapse().expect("a homeserver");
        let password = format!("pw-{name}");
        let out = tokio::process::Command::new(&register)
            .args([
                "-u",
                name,
                "-p",
                &password,
                "--no-admin",
                "-k",
                &secret,
                &url,
            ])
            .output()
            .await
            .expect("run register_new_matrix_user");
        assert!(
            out.status.success(),
            "register {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let client = Client::builder()
            .homeserver_url(&url)
            .build()
            .await
            .unwrap();
        let login = client
            .matrix_auth()
            .login_username(name, &password)
            .send()
            .await
            .expect("log in");
        Person {
            client,
            user_id: login.user_id,
            token: login.access_token,
        }
    }

    pub fn id(&self) -> &str {
        self.user_id.as_str()
    }

    /// A new room with `invite` invited.
    pub async fn create_room(&self, invite: &[&Person]) -> OwnedRoomId {
        let mut req = create_room::v3::Request::new();
        req.invite = invite.iter().map(|p| p.user_id.clone()).collect();
        self.client.send(req).await.expect("create a room").room_id
    }

    pub async fn join(&self, room: &OwnedRoomId) {
        self.client
            .join_room_by_id(room)
            .await
            .expect("join the room");
    }

    /// Waits until `user`'s membership of `room` is `want` (`join`, `leave`, `invite`).
    pub async fn wait_membership(&self, room: &OwnedRoomId, user: &UserId, want: &str) {
        wait_for(&format!("{user} to be '{want}' in {room}"), || async {
            let resp = self
                .client
                .send(get_member_events::v3::Request::new(room.clone()))
                .await
                .ok()?;
            resp.chunk.iter().find_map(|raw| {
                let ev = raw.deserialize().ok()?;
                (ev.state_key() == user && ev.membership().as_str() == want).then_some(())
            })
        })
        .await;
    }

    /// Waits until `user` is a member of `room` (the bridge accepted its invitation).
    pub async fn wait_member(&self, room: &OwnedRoomId, user: &UserId) {
        wait_for(&format!("{user} to join {room}"), || async {
            let resp = self
                .client
                .send(joined_members::v3::Request::new(room.clone()))
                .await
                .ok()?;
            resp.joined.contains_key(user).then_some(())
        })
        .await;
    }

    pub async fn say(&self, room: &OwnedRoomId, text: &str) -> OwnedEventId {
        self.send(room, RoomMessageEventContent::text_plain(text))
            .await
    }

    pub async fn reply_in_thread(
        &self,
        room: &OwnedRoomId,
        root: &OwnedEventId,
        text: &str,
    ) -> OwnedEventId {
        let mut content = RoomMessageEventContent::text_plain(text);
        content.relates_to = Some(Relation::Thread(Thread::plain(root.clone(), root.clone())));
        self.send(room, content).await
    }

    async fn send(&self, room: &OwnedRoomId, content: RoomMessageEventContent) -> OwnedEventId {
        let txn = matrix_sdk::ruma::TransactionId::new();
        let req = matrix_sdk::ruma::api::client::message::send_message_event::v3::Request::new(
            room.clone(),
            txn,
            &content,
        )
        .unwrap();
        self.client
            .send(req)
            .await
            .expect("send a message")
            .event_id
    }

    /// Every text message in `room`'s thread at `root` by `sender`, oldest first.
    pub async fn thread(
        &self,
        room: &OwnedRoomId,
        root: &OwnedEventId,
        sender: &UserId,
    ) -> Vec<String> {
        let mut req = get_message_events::v3::Request::backward(room.clone());
        req.limit = 1000u32.into();
        let resp = self.client.send(req).await.expect("read the room");
        let mut out: Vec<String> = resp
            .chunk
            .iter()
            .filter_map(|raw| match raw.deserialize().ok()? {
                AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::RoomMessage(
                    MessageLikeEvent::Original(ev),
                )) if ev.sender == sender => {
                    let in_thread = matches!(&ev.content.relates_to,
                        Some(Relation::Thread(t)) if &t.event_id == root);
                    match (&ev.content.msgtype, in_thread) {
                        (MessageType::Notice(n), true) => Some(n.body.clone()),
                        (MessageType::Text(t), true) => Some(t.body.clone()),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect();
        out.reverse();
        out
    }

    /// Waits until the thread has `n` messages by `sender` (the bridge's two loops post
    /// replies and session events, so their order across loops is not fixed).
    pub async fn wait_thread_len(
        &self,
        room: &OwnedRoomId,
        root: &OwnedEventId,
        sender: &UserId,
        n: usize,
    ) -> Vec<String> {
        let what = format!("{n} messages in the thread");
        aof_testkit::wait::poll_until(
            &what,
            Duration::from_secs(120),
            Duration::from_millis(300),
            || async move {
                let msgs = self.thread(room, root, sender).await;
                (msgs.len() >= n).then_some(msgs)
            },
        )
        .await
    }

    /// Waits until the thread has a message by `sender` that `want` accepts; returns
    /// the whole thread then.
    pub async fn wait_thread(
        &self,
        room: &OwnedRoomId,
        root: &OwnedEventId,
        sender: &UserId,
        what: &str,
        want: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let want = &want;
        aof_testkit::wait::poll_until(
            what,
            Duration::from_secs(120),
            Duration::from_millis(300),
            || async move {
                let msgs = self.thread(room, root, sender).await;
                msgs.iter().any(|m| want(m)).then_some(msgs)
            },
        )
        .await
    }
}
