//! The Matrix side, through matrix-sdk: its HTTP layer authenticates, retries 5xx and
//! honours `429 M_LIMIT_EXCEEDED` with `retry_after_ms`; the bridge sends typed ruma
//! requests (sync, send with a transaction id, join, leave) and keeps its own state,
//! so no SDK state store is needed.

use std::time::Duration;

use matrix_sdk::{
    authentication::matrix::MatrixSession,
    config::RequestConfig,
    ruma::{
        api::client::{
            membership::{join_room_by_id, leave_room},
            message::send_message_event,
            sync::sync_events,
        },
        events::{
            relation::Thread as ThreadRel,
            room::{
                member::MembershipState,
                message::{MessageType, Relation, RoomMessageEventContent},
            },
            AnyStrippedStateEvent, AnySyncMessageLikeEvent, AnySyncStateEvent,
            AnySyncTimelineEvent, SyncMessageLikeEvent,
        },
        OwnedEventId, OwnedRoomId, OwnedTransactionId, OwnedUserId, UserId,
    },
    store::RoomLoadSettings,
    Client, HttpError, SessionMeta, SessionTokens,
};

pub use sync_events::v3::Response as SyncResponse;

/// A text message someone wrote in a room the bridge is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub room_id: String,
    pub event_id: String,
    pub sender: String,
    pub body: String,
    /// The thread it was written in (the thread's root event), if any.
    pub thread_root: Option<String>,
}

/// An invitation to a room, and who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub room_id: String,
    pub inviter: String,
}

#[derive(Clone)]
pub struct Chat {
    client: Client,
    me: OwnedUserId,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// A room or event id that is not one (from a stored row or a chat message).
    #[error("not a valid Matrix id: {0}")]
    Invalid(String),
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl ChatError {
    /// Whether trying again can help (the homeserver is down or overloaded) or never
    /// will (the bridge is not in the room any more, the event is refused).
    pub fn is_permanent(&self) -> bool {
        match self {
            ChatError::Invalid(_) => true,
            ChatError::Http(e) => match e.as_client_api_error() {
                Some(api) => {
                    let code = api.status_code.as_u16();
                    (400..500).contains(&code) && code != 429 && code != 408
                }
                None => false,
            },
        }
    }
}

fn room(id: &str) -> Result<OwnedRoomId, ChatError> {
    OwnedRoomId::try_from(id).map_err(|e| ChatError::Invalid(format!("{id}: {e}")))
}

impl Chat {
    /// Logs in with an access token; `whoami` must name `user_id` (a token of another
    /// account is refused here, not discovered later).
    pub async fn connect(homeserver: &str, user_id: &str, token: &str) -> anyhow::Result<Chat> {
        let me = UserId::parse(user_id)?;
        let client = Client::builder().homeserver_url(homeserver).build().await?;
        let session = MatrixSession {
            meta: SessionMeta {
                user_id: me.clone(),
                // Only end-to-end encryption uses the device; the bridge has none.
                device_id: "AOFBRIDGE".into(),
            },
            tokens: SessionTokens {
                access_token: token.to_string(),
                refresh_token: None,
            },
        };
        client
            .matrix_auth()
            .restore_session(session, RoomLoadSettings::default())
            .await?;
        let who = client.whoami().await?;
        if who.user_id != me {
            anyhow::bail!(
                "the access token belongs to {}, not to matrix.user_id {me}",
                who.user_id
            );
        }
        Ok(Chat { client, me })
    }

    pub fn me(&self) -> &str {
        self.me.as_str()
    }

    /// One long-poll sync from `since` (none: the first sync, which only gives a token).
    pub async fn sync(
        &self,
        since: Option<&str>,
        timeout: Duration,
    ) -> Result<SyncResponse, HttpError> {
        let mut req = sync_events::v3::Request::new();
        req.since = since.map(str::to_string);
        req.timeout = Some(timeout);
        self.client
            .send(req)
            .with_request_config(RequestConfig::new().timeout(timeout + Duration::from_secs(30)))
            .await
    }

    /// Posts `text` as a notice in the thread at `root`, under `txn_id`: the homeserver
    /// answers a repeated transaction id with the event it already made.
    pub async fn post(
        &self,
        room_id: &str,
        root: &str,
        txn_id: &str,
        text: &str,
    ) -> Result<String, ChatError> {
        let room = room(room_id)?;
        let root =
            OwnedEventId::try_from(root).map_err(|e| ChatError::Invalid(format!("{root}: {e}")))?;
        let mut content = RoomMessageEventContent::notice_plain(text);
        content.relates_to = Some(Relation::Thread(ThreadRel::plain(root.clone(), root)));
        let txn: OwnedTransactionId = txn_id.into();
        let req = send_message_event::v3::Request::new(room, txn, &content)
            .map_err(|e| ChatError::Invalid(e.to_string()))?;
        Ok(self.client.send(req).await?.event_id.to_string())
    }

    pub async fn join(&self, room_id: &str) -> Result<(), ChatError> {
        self.client
            .send(join_room_by_id::v3::Request::new(room(room_id)?))
            .await?;
        Ok(())
    }

    pub async fn leave(&self, room_id: &str) -> Result<(), ChatError> {
        self.client
            .send(leave_room::v3::Request::new(room(room_id)?))
            .await?;
        Ok(())
    }

    /// The text messages of a sync, oldest first, without the bridge's own.
    pub fn messages(&self, resp: &SyncResponse) -> Vec<Incoming> {
        let mut out = Vec::new();
        for (room_id, room) in &resp.rooms.join {
            // A room just joined shows some of its history first: commands written
            // before the bridge was there are not for it.
            let events = &room.timeline.events;
            let start = events
                .iter()
                .rposition(|raw| self.is_my_join(raw))
                .map_or(0, |i| i + 1);
            for raw in &events[start..] {
                let Ok(AnySyncTimelineEvent::MessageLike(AnySyncMessageLikeEvent::RoomMessage(
                    SyncMessageLikeEvent::Original(ev),
                ))) = raw.deserialize()
                else {
                    continue;
                };
                if ev.sender == self.me {
                    continue;
                }
                let MessageType::Text(text) = &ev.content.msgtype else {
                    continue;
                };
                let thread_root = match &ev.content.relates_to {
                    Some(Relation::Thread(t)) => Some(t.event_id.to_string()),
                    // An edit is not a new command.
                    Some(Relation::Replacement(_)) => continue,
                    _ => None,
                };
                out.push(Incoming {
                    room_id: room_id.to_string(),
                    event_id: ev.event_id.to_string(),
                    sender: ev.sender.to_string(),
                    body: text.body.clone(),
                    thread_root,
                });
            }
        }
        out
    }

    fn is_my_join(&self, raw: &matrix_sdk::ruma::serde::Raw<AnySyncTimelineEvent>) -> bool {
        let Ok(AnySyncTimelineEvent::State(AnySyncStateEvent::RoomMember(m))) = raw.deserialize()
        else {
            return false;
        };
        m.state_key() == &self.me && m.membership() == &MembershipState::Join
    }

    /// The rooms the bridge is invited to, with the inviting user.
    pub fn invites(&self, resp: &SyncResponse) -> Vec<Invite> {
        let mut out = Vec::new();
        for (room_id, room) in &resp.rooms.invite {
            let inviter =
                room.invite_state
                    .events
                    .iter()
                    .find_map(|raw| match raw.deserialize().ok()? {
                        AnyStrippedStateEvent::RoomMember(m) if m.state_key == self.me => {
                            Some(m.sender.to_string())
                        }
                        _ => None,
                    });
            if let Some(inviter) = inviter {
                out.push(Invite {
                    room_id: room_id.to_string(),
                    inviter,
                });
            }
        }
        out
    }
}
