//! Delivery of `async_callback` results: when a child session ends, the store records a
//! callback in the same transaction; this task resumes the parent with every pending
//! callback once the parent has no run in flight. The resume run and the "delivered"
//! marks commit together (the store refuses a second delivery), so each callback reaches
//! its parent exactly once, also across restarts and with several coordinators.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use aof_core::SessionStatus;
use aof_store::PendingCallback;
use aof_wire::{
    sse::{self, SessionPayload},
    ExecutionMode, RunCreate, RunType,
};

use crate::{auth::Principal, error::ApiError, AppState};

/// Safety net for missed wake-ups (a store error on the way, say).
const SWEEP_EVERY: Duration = Duration::from_secs(15);

pub(crate) async fn run(st: AppState, shutdown: CancellationToken) {
    let mut feed = st.store.subscribe();
    // After a restart: whatever was recorded but not delivered.
    sweep(&st).await;
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => sweep(&st).await,
            item = feed.recv() => match item {
                Ok(item) if item.kind == sse::SESSION_UPDATED => {
                    let Ok(SessionPayload { session: s }) = serde_json::from_str(&item.data) else {
                        continue;
                    };
                    if !ended(s.status) {
                        continue;
                    }
                    // The session may have callbacks waiting for it to become idle…
                    deliver(&st, &s.session_id).await;
                    // …and, as a child that just ended, may have left one for its parent.
                    if let Some(parent) = &s.parent_session_id {
                        deliver(&st, parent).await;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => sweep(&st).await,
                Err(RecvError::Closed) => return,
            }
        }
    }
}

fn ended(status: SessionStatus) -> bool {
    matches!(
        status,
        SessionStatus::Finished
            | SessionStatus::Idle
            | SessionStatus::Failed
            | SessionStatus::Stopped
    )
}

async fn sweep(st: &AppState) {
    match st.store.callback_parents().await {
        Ok(parents) => {
            for p in parents {
                deliver(st, &p).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "callback sweep failed"),
    }
}

/// Resumes `parent` with all its pending callbacks if it can take a run now.
async fn deliver(st: &AppState, parent: &str) {
    if let Err(e) = try_deliver(st, parent).await {
        match e {
            // Busy: a run is in flight (or another delivery won); the parent's next
            // idle moment brings us back.
            ApiError::Conflict(..) | ApiError::NotFound(..) => {
                tracing::debug!(parent, error = %e, "callbacks wait")
            }
            e => tracing::warn!(parent, error = %e, "callback delivery failed"),
        }
    }
}

async fn try_deliver(st: &AppState, parent: &str) -> Result<(), ApiError> {
    let pending = st.store.pending_callbacks(parent).await?;
    if pending.is_empty() {
        return Ok(());
    }
    let Some(session) = st.store.get_session(parent).await? else {
        return Ok(());
    };
    // A failed or stopped parent keeps its callbacks until someone resumes it.
    if !matches!(
        session.status,
        SessionStatus::Finished | SessionStatus::Idle
    ) {
        return Ok(());
    }
    let mut parts = Vec::with_capacity(pending.len());
    for cb in &pending {
        let result = st.store.session_result(&cb.child_session_id).await?;
        let error = match cb.status {
            SessionStatus::Failed | SessionStatus::Stopped => st
                .store
                .get_run(&cb.child_run_id)
                .await?
                .and_then(|r| r.run.error),
            _ => None,
        };
        parts.push(message_part(
            cb,
            result.and_then(|r| r.result_text).as_deref(),
            error.as_deref(),
        ));
    }
    let mut parameters = serde_json::Map::new();
    parameters.insert("prompt".into(), prompt(&parts).into());
    let req = RunCreate {
        run_type: RunType::ResumeSession,
        parameters,
        session_id: Some(parent.to_string()),
        agent_name: None,
        project_dir: None,
        parent_session_id: session.parent_session_id.clone(),
        execution_mode: ExecutionMode::AsyncPoll,
        additional_demands: None,
        scope: None,
    };
    let ids = pending.iter().map(|c| c.id).collect();
    let rec = crate::runs::create_run(st, &Principal::Internal, req, ids).await?;
    tracing::info!(
        parent,
        run_id = %rec.run.run_id,
        callbacks = pending.len(),
        "delivered child callbacks"
    );
    Ok(())
}

/// One child's report, tagged so an agent can tell it from a user's message.
fn message_part(cb: &PendingCallback, result: Option<&str>, error: Option<&str>) -> String {
    let body = match cb.status {
        SessionStatus::Failed | SessionStatus::Stopped => {
            error.or(result).unwrap_or("(no error message)")
        }
        _ => result.unwrap_or("(no result)"),
    };
    format!(
        "<agent-callback session=\"{}\" status=\"{}\">\n{}\n</agent-callback>",
        cb.child_session_id,
        cb.status.as_str(),
        body.trim()
    )
}

fn prompt(parts: &[String]) -> String {
    let lead = if parts.len() == 1 {
        "A child session you started has ended."
    } else {
        "Child sessions you started have ended."
    };
    format!(
        "{lead}\n\n{}\n\nContinue your task with these results.",
        parts.join("\n\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cb(status: SessionStatus) -> PendingCallback {
        PendingCallback {
            id: 1,
            parent_session_id: "p".into(),
            child_session_id: "c1".into(),
            child_run_id: "r1".into(),
            status,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn messages_carry_each_child_and_its_outcome() {
        let ok = message_part(&cb(SessionStatus::Finished), Some(" 42 \n"), None);
        assert_eq!(
            ok,
            "<agent-callback session=\"c1\" status=\"finished\">\n42\n</agent-callback>"
        );
        let failed = message_part(&cb(SessionStatus::Failed), None, Some("boom"));
        assert!(failed.contains("status=\"failed\">\nboom\n"), "{failed}");
        let p = prompt(&[ok.clone(), failed]);
        assert!(p.starts_with("Child sessions you started have ended."));
        assert!(p.contains(&ok));
        assert!(prompt(&[ok]).starts_with("A child session you started has ended."));
    }
}
