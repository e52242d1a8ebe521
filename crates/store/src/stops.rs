//! The reference's answers to "stop this session" that do not depend on the backend:
//! which session states need no run to be touched, and the wording of every outcome.

use aof_core::RunStatus;

use crate::StopOutcome;

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
pub fn settled(session_id: &str, session_status: &str) -> Option<StopOutcome> {
    match session_status {
        "stopping" => Some(outcome(
            session_id,
            "stopping",
            None,
            "Session is already being stopped".into(),
        )),
        s @ ("stopped" | "finished" | "failed") => {
            Some(outcome(session_id, s, None, format!("Session already {s}")))
        }
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
