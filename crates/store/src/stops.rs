//! The reference's answers to "stop this session" that do not depend on the backend:
//! which session states need no run to be touched, and the wording of every outcome.

use aof_core::{RunStatus, SessionStatus};

use crate::StopOutcome;

/// `runs.stop_delivered` of an ended run whose session is idle and being stopped: its
/// runner still holds the session's process (AOF reference runners keep one alive
/// between turns) and gets `stop_sessions` on its next poll, which sets the value to 1.
/// 0 and 1 keep their meaning for live runs (a stop owed / delivered).
pub const IDLE_STOP_OWED: i64 = 2;

/// A session-level stop outcome (always `ok`, with a message).
pub fn outcome(
    session_id: &str,
    status: &str,
    run_id: Option<String>,
    message: String,
) -> StopOutcome {
    StopOutcome {
        ok: true,
        session_id: session_id.to_string(),
        run_id,
        status: status.to_string(),
        message: Some(message),
    }
}

/// The answer when the session's own status settles it (already stopping or ended).
pub fn settled(session_id: &str, session_status: SessionStatus) -> Option<StopOutcome> {
    match session_status {
        SessionStatus::Stopping => Some(outcome(
            session_id,
            "stopping",
            None,
            "Session is already being stopped".into(),
        )),
        s @ (SessionStatus::Stopped | SessionStatus::Finished | SessionStatus::Failed) => Some(
            outcome(session_id, s.as_str(), None, format!("Session already {s}")),
        ),
        _ => None,
    }
}

/// The answer when the session has no live run (none at all, or its latest ended): the
/// store marks the session stopped.
pub fn no_live_run(session_id: &str, latest: Option<(&str, RunStatus)>) -> StopOutcome {
    match latest {
        None => outcome(
            session_id,
            "stopped",
            None,
            "No active run found - session marked as stopped".into(),
        ),
        Some((run_id, status)) => outcome(
            session_id,
            "stopped",
            Some(run_id.to_string()),
            format!("Run already in {status} state - session marked as stopped"),
        ),
    }
}

/// The answer when an idle session's stop was queued for the runner holding it.
pub fn idle_stop_queued(session_id: &str, run_id: &str) -> StopOutcome {
    outcome(
        session_id,
        "stopping",
        Some(run_id.to_string()),
        "Stop command queued for idle session".into(),
    )
}

/// The answer to a repeated stop of an idle session whose runner was told already (or
/// is gone): the store marks it stopped rather than wait for a report that may never come.
pub fn idle_stop_abandoned(session_id: &str, run_id: &str) -> StopOutcome {
    outcome(
        session_id,
        "stopped",
        Some(run_id.to_string()),
        "No runner confirmed the stop - idle session marked as stopped".into(),
    )
}
