//! Chat → AOF: commands in rooms start, resume and stop sessions and decide approvals,
//! as the sender's allow-list entry permits. Every reply goes into the session's thread
//! under a transaction id made from the command's event id, so a replayed sync posts
//! nothing twice.

use std::{sync::Arc, time::Duration};

use aof_wire::approval::Decision;
use tokio_util::sync::CancellationToken;

use crate::{
    aof::{Aof, AofError},
    chat::{Chat, ChatError, Incoming},
    command::{self, Command},
    config::BridgeConfig,
    state::{State, Thread, SYNC_TOKEN},
};

/// How long one sync waits for news.
const SYNC_WAIT: Duration = Duration::from_secs(30);

pub struct Bridge {
    pub cfg: BridgeConfig,
    pub state: State,
    pub aof: Aof,
    pub chat: Chat,
}

/// Something went wrong that trying again can fix (AOF or the homeserver is down):
/// the sync is not acknowledged, so its messages come again.
#[derive(Debug, thiserror::Error)]
pub enum Retry {
    #[error(transparent)]
    Aof(AofError),
    #[error(transparent)]
    Chat(ChatError),
    #[error("bridge state: {0}")]
    State(#[from] sqlx::Error),
}

impl From<ChatError> for Retry {
    fn from(e: ChatError) -> Retry {
        Retry::Chat(e)
    }
}

/// Exponential backoff from 0.5 s to 30 s.
pub struct Backoff(u32);

impl Backoff {
    pub fn new() -> Backoff {
        Backoff(0)
    }
    pub fn wait(&mut self) -> Duration {
        let d = Duration::from_millis(500 * (1u64 << self.0.min(6))).min(Duration::from_secs(30));
        self.0 += 1;
        d
    }
    pub fn reset(&mut self) {
        self.0 = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// The session a chat command starts: named after the command's event, so the same
/// command replayed after a crash finds its session taken instead of starting another.
pub fn session_id_for(event_id: &str) -> String {
    let safe: String = event_id
        .trim_start_matches('$')
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' | '.' => c,
            _ => '_',
        })
        .take(100)
        .collect();
    format!("ses_mx_{safe}")
}

impl Bridge {
    /// Syncs until `stop`; a failed sync or a failed command is retried with backoff
    /// from the last acknowledged sync token.
    pub async fn sync_loop(self: Arc<Self>, stop: CancellationToken) {
        let mut since = match self.state.get(SYNC_TOKEN).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "matrix bridge: cannot read its state");
                return;
            }
        };
        let mut backoff = Backoff::new();
        while !stop.is_cancelled() {
            let resp = tokio::select! {
                _ = stop.cancelled() => return,
                r = self.chat.sync(since.as_deref(), SYNC_WAIT) => r,
            };
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    let wait = backoff.wait();
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "matrix sync failed");
                    tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(wait) => {} }
                    continue;
                }
            };
            match self.handle_sync(&resp, since.is_none()).await {
                Ok(()) => {
                    if let Err(e) = self.state.set(SYNC_TOKEN, &resp.next_batch).await {
                        tracing::error!(error = %e, "matrix bridge: cannot store the sync token");
                    } else {
                        since = Some(resp.next_batch.clone());
                        backoff.reset();
                    }
                }
                Err(e) => {
                    let wait = backoff.wait();
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "matrix bridge: handling a sync failed; it comes again");
                    tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(wait) => {} }
                }
            }
        }
    }

    /// Invitations, then messages. The first sync after a fresh start has no token: it
    /// holds the rooms' history, whose commands are old and are not run.
    async fn handle_sync(
        &self,
        resp: &crate::chat::SyncResponse,
        first: bool,
    ) -> Result<(), Retry> {
        for invite in self.chat.invites(resp) {
            let done = if self.cfg.user(&invite.inviter).is_some() {
                tracing::info!(room = %invite.room_id, inviter = %invite.inviter, "joining a room");
                self.chat.join(&invite.room_id).await
            } else {
                tracing::info!(room = %invite.room_id, inviter = %invite.inviter, "declining an invitation from a user not on the allow-list");
                self.chat.leave(&invite.room_id).await
            };
            match done {
                Ok(()) => {}
                // A room that is gone or closed to the bridge must not stop the sync.
                Err(e) if e.is_permanent() => {
                    tracing::warn!(error = %e, room = %invite.room_id, "answering an invitation failed; skipped")
                }
                Err(e) => return Err(e.into()),
            }
        }
        if first {
            return Ok(());
        }
        for msg in self.chat.messages(resp) {
            self.handle_message(&msg).await?;
        }
        Ok(())
    }

    async fn handle_message(&self, msg: &Incoming) -> Result<(), Retry> {
        let cmd = command::parse(&msg.body, self.chat.me());
        let thread = match &msg.thread_root {
            Some(root) => self.state.thread_at(&msg.room_id, root).await?,
            None => None,
        };
        // Plain talk outside a session's thread is not for the bridge.
        if cmd.is_none() && thread.is_none() {
            return Ok(());
        }
        // Replies go into the message's thread (or start one on it).
        let root = msg
            .thread_root
            .clone()
            .unwrap_or_else(|| msg.event_id.clone());
        let reply_txn = format!("cmd.{}", msg.event_id);
        let Some(user) = self.cfg.user(&msg.sender) else {
            if !self.state.take_command(&msg.event_id).await? {
                return Ok(());
            }
            tracing::info!(sender = %msg.sender, room = %msg.room_id, "refused: not on the allow-list");
            let text = format!(
                "⛔ {} is not allowed to use AOF from chat; nothing was started.",
                msg.sender
            );
            return self.reply(&msg.room_id, &root, &reply_txn, &text).await;
        };
        let needs_action = !matches!(cmd, Some(Command::Help) | Some(Command::Unknown(_)));
        if needs_action && !user.may_act() {
            if !self.state.take_command(&msg.event_id).await? {
                return Ok(());
            }
            let text = format!(
                "⛔ {} is a {} here; starting, continuing, stopping sessions and approving tools need operator.",
                msg.sender,
                user.role.as_str()
            );
            return self.reply(&msg.room_id, &root, &reply_txn, &text).await;
        }
        let text = match (cmd, thread) {
            (Some(Command::Run { agent, prompt }), _) => {
                if msg.thread_root.is_some() {
                    "Start sessions from the room, not inside a thread.".to_string()
                } else if !user.agents.contains(&agent) {
                    format!(
                        "⛔ agent '{agent}' is not open to {} from chat (open: {}).",
                        msg.sender,
                        if user.agents.is_empty() {
                            "none".into()
                        } else {
                            user.agents.join(", ")
                        }
                    )
                } else {
                    // Not marked as taken first: a retry after a crash finds the session
                    // by its id and does not start a second one.
                    return self.start(msg, &agent, &prompt).await;
                }
            }
            (Some(Command::Help), _) => command::USAGE.to_string(),
            (Some(Command::Unknown(what)), _) => {
                format!("Unknown command `!aof {what}`. {}", command::USAGE)
            }
            (Some(_), None) => "Use this in the thread of a session.".to_string(),
            (Some(Command::Stop), Some(t)) => match self.aof.stop(&t.session_id).await {
                Ok(_) => format!("⏹️ stopping {} (asked by {})", t.session_id, msg.sender),
                Err(e) if e.is_transient() => return Err(Retry::Aof(e)),
                Err(e) => format!("Could not stop {}: {e}", t.session_id),
            },
            (Some(Command::Approve { message }), Some(t)) => {
                self.decide(&t, Decision::Approve, message, &msg.sender)
                    .await?
            }
            (Some(Command::Deny { reason }), Some(t)) => {
                self.decide(&t, Decision::Deny, reason, &msg.sender).await?
            }
            (None, Some(t)) => {
                // At most once: a resume is taken before it is sent, so a crash between
                // the two cannot run the prompt twice (the reply says if it failed).
                if !self.state.take_command(&msg.event_id).await? {
                    return Ok(());
                }
                let text = match self.aof.resume(&t.session_id, &msg.body).await {
                    Ok(run) => format!("↩️ continuing {} ({})", t.session_id, run.run_id),
                    Err(e) => format!("Could not continue {}: {e}. Send it again.", t.session_id),
                };
                return self.reply(&msg.room_id, &root, &reply_txn, &text).await;
            }
            (None, None) => return Ok(()),
        };
        if !self.state.take_command(&msg.event_id).await? {
            return Ok(());
        }
        self.reply(&msg.room_id, &root, &reply_txn, &text).await
    }

    async fn start(&self, msg: &Incoming, agent: &str, prompt: &str) -> Result<(), Retry> {
        let session_id = session_id_for(&msg.event_id);
        self.state
            .add_thread(&Thread {
                session_id: session_id.clone(),
                room_id: msg.room_id.clone(),
                root_event_id: msg.event_id.clone(),
                agent: agent.to_string(),
                started_by: msg.sender.clone(),
            })
            .await?;
        let text = match self.aof.start(&session_id, agent, prompt).await {
            Ok(_) => format!(
                "▶️ {session_id} started with {agent} for {}. Reply in this thread to continue; `!aof stop` stops it.",
                msg.sender
            ),
            Err(e) if e.code() == Some("session_exists") => {
                // Started before a crash; its reply may not have gone out yet.
                format!("▶️ {session_id} started with {agent} for {}.", msg.sender)
            }
            Err(e) if e.is_transient() => return Err(Retry::Aof(e)),
            Err(e) => format!("Could not start {agent}: {e}"),
        };
        self.state.take_command(&msg.event_id).await?;
        self.reply(
            &msg.room_id,
            &msg.event_id,
            &format!("cmd.{}", msg.event_id),
            &text,
        )
        .await
    }

    /// Decides the session's oldest pending approval for `sender`; the decision is
    /// made with the bridge's AOF key and names the chat user in its message.
    async fn decide(
        &self,
        t: &Thread,
        decision: Decision,
        text: Option<String>,
        sender: &str,
    ) -> Result<String, Retry> {
        let pending = match self.aof.pending_approvals(&t.session_id).await {
            Ok(p) => p,
            Err(e) if e.is_transient() => return Err(Retry::Aof(e)),
            Err(e) => return Ok(format!("Could not read the approvals: {e}")),
        };
        let Some(first) = pending
            .iter()
            .min_by(|a, b| a.created_at.cmp(&b.created_at))
        else {
            return Ok("Nothing in this session is waiting for approval.".into());
        };
        let said = text.map(|t| format!("{t} ")).unwrap_or_default();
        let message = Some(format!("{said}({sender} via Matrix)"));
        let verb = match decision {
            Decision::Approve => "approved",
            Decision::Deny => "denied",
        };
        Ok(
            match self.aof.decide(&first.approval_id, decision, message).await {
                Ok(a) => format!(
                    "{} {} {} for {sender}{}",
                    if decision == Decision::Approve {
                        "✔️"
                    } else {
                        "✖️"
                    },
                    a.tool_name,
                    verb,
                    match pending.len() {
                        1 => String::new(),
                        n => format!(" ({} more waiting)", n - 1),
                    }
                ),
                Err(e) if e.is_transient() => return Err(Retry::Aof(e)),
                Err(e) => format!("Could not decide {}: {e}", first.approval_id),
            },
        )
    }

    /// Posts once per transaction id: a reply already sent (before a restart) is not
    /// sent again; a new one is remembered with the event it became.
    pub async fn reply(
        &self,
        room_id: &str,
        root: &str,
        txn: &str,
        text: &str,
    ) -> Result<(), Retry> {
        if self.state.sent(txn).await?.is_some() {
            return Ok(());
        }
        match self.chat.post(room_id, root, txn, text).await {
            Ok(event_id) => Ok(self.state.record_sent(txn, room_id, &event_id).await?),
            Err(e) if e.is_permanent() => {
                tracing::warn!(error = %e, room = room_id, "matrix refused a reply; dropped");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_valid_and_stable() {
        let id = session_id_for("$Ab-_c+/d=9");
        assert_eq!(id, "ses_mx_Ab-_c__d_9");
        assert_eq!(id, session_id_for("$Ab-_c+/d=9"));
        assert!(session_id_for(&format!("${}", "x".repeat(500))).len() <= 128);
    }

    #[test]
    fn backoff_grows_to_a_ceiling() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..9).map(|_| b.wait().as_millis() as u64).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        b.reset();
        assert_eq!(b.wait(), Duration::from_millis(500));
    }
}
