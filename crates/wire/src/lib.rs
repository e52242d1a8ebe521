//! aof-wire: every type that crosses a process boundary — HTTP bodies, SSE events and
//! the runner protocol. Shared by coordinator, runner, CLI and (later) the dashboard.
//!
//! Shapes follow the AOF reference coordinator so its clients and runners keep working;
//! fields we add are optional and documented as AOF-RS extensions.

pub mod agents;
pub mod api;
pub mod approval;
pub mod audit;
pub mod auth;
pub mod error;
pub mod event;
pub mod limits;
pub mod run;
pub mod runner;
pub mod session;
pub mod sse;

pub use error::ErrorBody;
pub use event::{Event, StoredEvent};
pub use limits::RunLimits;
pub use run::{Demands, ExecutionMode, Run, RunCreate, RunCreateResponse, RunStatus, RunType};
pub use runner::*;
pub use session::{Session, SessionResult, SessionStatus};

/// Numeric protocol version we speak; sent by our runner as `X-AOF-Protocol`, answered by
/// the coordinator in `RegisterResponse::protocol_version`.
pub const PROTOCOL_VERSION: u32 = 1;
/// The oldest peer version we still talk to. Each side refuses a peer below its own
/// minimum; a newer peer decides itself whether it can speak down to us.
pub const MIN_PROTOCOL_VERSION: u32 = 1;
/// Header carrying the runner's protocol version (absent from the reference's runners).
pub const PROTOCOL_HEADER: &str = "x-aof-protocol";

/// Header carrying a run's lease token on runner writes (fencing).
pub const LEASE_HEADER: &str = "x-aof-lease-token";
/// Header naming the run an event write belongs to.
pub const RUN_HEADER: &str = "x-aof-run-id";
/// Header carrying a writer-chosen key; a repeated key in one session is stored once.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Timestamps on the wire: RFC 3339 with microseconds, UTC offset `+00:00`, like the reference.
pub fn format_ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

pub fn now_ts() -> String {
    format_ts(chrono::Utc::now())
}
