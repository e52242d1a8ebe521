//! aof-core: identifiers, the run and session state machines, and lease rules.
//!
//! Pure logic only: no IO, no clock reads (callers pass `now`). Every state change a
//! store persists is first checked here, so an illegal move is an error, never a write.

pub mod ids;
pub mod run;
pub mod session;

pub use ids::{new_event_key, new_lease_token, new_run_id, new_runner_id, new_session_id};
pub use run::{IllegalTransition, RecoveryMode, RunEvent, RunStatus};
pub use session::SessionStatus;
