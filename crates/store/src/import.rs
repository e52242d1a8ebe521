//! Sessions brought over from another system (the AOF reference's database, see
//! `aof import --from-reference`): stored as they were, with their runs and events, and
//! never dispatched again — an imported run is always in a final status.

use aof_core::{RunStatus, SessionStatus};
use aof_wire::{Event, Run, Session};

/// One session with its runs and events, in their original order.
#[derive(Debug, Clone)]
pub struct ImportedSession {
    pub session: Session,
    /// The session's status once imported (also written into `session.status`).
    pub status: SessionStatus,
    pub runs: Vec<ImportedRun>,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone)]
pub struct ImportedRun {
    pub run: Run,
    /// Final: `completed`, `failed` or `stopped` (a run in flight when the other system
    /// stopped is imported as failed, with the reason in `run.error`).
    pub status: RunStatus,
}

impl ImportedSession {
    /// The idempotency key of the session's `i`-th imported event: importing the same
    /// file twice stores each event once.
    pub fn event_key(&self, i: usize) -> String {
        format!("import:{}:{i}", self.session.session_id)
    }
}
