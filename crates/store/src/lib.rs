//! aof-store: the persistence contract. Coordinators talk to a `Store`; SQLite
//! (aof-store-sqlite) and PostgreSQL (aof-store-postgres) implement it.
//!
//! Invariants every implementation keeps:
//! - Each state change and the feed items it causes commit in one transaction.
//! - Feed cursors are assigned in commit order, and `subscribe` delivers items in
//!   cursor order, so "replay after N, then live" has no gap and no duplicate.
//! - A run has at most one lease; writes carrying another token are refused.

pub mod approvals;
pub mod audit;
pub mod browser_sessions;
pub mod callbacks;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod error;
pub mod events;
pub mod import;
pub mod keys;
pub mod lifecycle;
pub mod matching;
pub mod rows;
pub mod runners;
pub mod sessions;
pub mod statements;
pub mod stops;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, watch};

use aof_core::{RecoveryMode, RunStatus, SessionStatus};
pub use audit::{AuditQuery, NewAuditEntry, OutcomeFilter};
pub use browser_sessions::BrowserSessionRecord;
pub use error::{Busy, Conflict, Fault, Illegal, Storage, StoreError, StoreResult};
pub use import::{ImportedRun, ImportedSession};

use aof_wire::{
    auth::KeyScope,
    runner::{HeldLease, RegisterRequest, RunnerInfo},
    session::{Affinity, BindRequest, MetadataPatch},
    sse::FeedItem,
    Demands, Event, ExecutionMode, Run, RunType, Session, SessionResult, StoredEvent,
};

/// Everything the coordinator decided about a new run before storing it.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub run_id: String,
    pub run_type: RunType,
    pub session_id: String,
    pub agent_name: Option<String>,
    pub parameters: serde_json::Value,
    pub project_dir: Option<String>,
    pub parent_session_id: Option<String>,
    pub execution_mode: ExecutionMode,
    pub demands: Demands,
    pub scope: Option<serde_json::Value>,
    /// The resolved agent blueprint, if the run has an agent.
    pub blueprint: Option<serde_json::Value>,
    pub timeout_at: Option<DateTime<Utc>>,
    /// Ids of pending child callbacks this run delivers to its (idle) session. Marked
    /// delivered in the run's own transaction; if the session is busy or one of them
    /// was delivered already, nothing is stored and the result is `StoreError::Busy`.
    pub deliver_callbacks: Vec<i64>,
    /// W3C trace context of the run's creation (OpenTelemetry), handed to the runner.
    pub traceparent: Option<String>,
}

/// An `async_callback` child that finished and has not yet been told to its parent.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingCallback {
    pub id: i64,
    pub parent_session_id: String,
    pub child_session_id: String,
    pub child_run_id: String,
    /// The child's session status when it ended: finished, idle, failed or stopped.
    pub status: SessionStatus,
    pub created_at: DateTime<Utc>,
}

/// A run plus what only the store knows about it.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub run: Run,
    pub status: RunStatus,
    pub lease_token: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// Who is writing to a run. `lease_token: None` is the AOF reference runner: accepted
/// only from the runner that holds the run.
#[derive(Debug, Clone)]
pub struct Writer {
    pub runner_id: String,
    pub lease_token: Option<String>,
}

#[derive(Debug, Clone)]
pub enum RunReport {
    Started,
    Completed {
        session_status: Option<SessionStatus>,
    },
    Failed {
        error: String,
    },
    Stopped {
        signal: String,
    },
    /// The runner stopped the execution unfinished and hands the run back (graceful
    /// drain). `requeue` (from the recovery policy): back to `pending` for another
    /// runner, or else failed. A run already `stopping` becomes `stopped`.
    Released {
        requeue: bool,
    },
}

/// Result of a stop request, shaped like the reference's response.
pub type StopOutcome = aof_wire::api::StopResponse;

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeleteOutcome {
    pub events_count: u64,
    pub runs_count: u64,
}

/// A run whose lease ran out, or that no runner matched in time, and what became of it.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub run_id: String,
    pub session_id: String,
    pub from: RunStatus,
    pub to: RunStatus,
}

#[derive(Debug, Clone)]
pub struct EventWrite {
    pub event: Event,
    pub run_id: Option<String>,
    /// Writer-chosen key; a second write with the same key in a session is a no-op.
    pub idempotency_key: Option<String>,
    /// Our runner's lease token: the write is refused unless it holds `run_id`.
    pub lease_token: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub runs_by_status: Vec<(RunStatus, i64)>,
    pub sessions_by_status: Vec<(SessionStatus, i64)>,
    pub events: i64,
    pub runners_online: i64,
    pub approvals_pending: i64,
}

/// An API key as stored: the public id and a SHA-256 of the secret part, never the
/// secret itself.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: String,
    pub name: Option<String>,
    pub role: aof_wire::auth::Role,
    /// Hex SHA-256 of the secret part of the key.
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// A runner key's limits (empty: none).
    pub scope: aof_wire::auth::KeyScope,
}

/// A run's session token as stored (hash only); valid until `expires_at` and only while
/// its run is live.
#[derive(Debug, Clone)]
pub struct SessionTokenRecord {
    pub id: String,
    pub hash: String,
    pub run_id: String,
    pub session_id: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
pub struct LeasePolicy {
    pub ttl: chrono::Duration,
    pub recovery: RecoveryMode,
}

/// What a runner's long-poll needs to know about it, in one read.
#[derive(Debug, Clone)]
pub enum PollState {
    /// No such runner (it must register again).
    Unknown,
    /// Marked for deregistration; the poll answers `{"deregistered": true}`.
    Deregister,
    Ready {
        runner: Box<RunnerInfo>,
        /// Stops this runner has not been told of yet.
        has_stops: bool,
    },
}

/// A position in the session list: the last session of a page (its creation time and
/// its row number, which breaks ties the way the list is ordered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    pub created_at: String,
    pub row: i64,
}

/// Which sessions a list page holds; all `None`: every session. Each one narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    pub status: Option<aof_core::SessionStatus>,
    /// The agent name, exactly.
    pub agent: Option<String>,
    /// Only children of this session.
    pub parent: Option<String>,
    /// A case-insensitive substring of the session id, agent name, host or project dir.
    pub text: Option<String>,
}

/// One page of [`Store::list_sessions_page`].
#[derive(Debug, Clone)]
pub struct SessionPage {
    pub sessions: Vec<Session>,
    pub next: Option<SessionCursor>,
}

/// A position in the runner list: the last runner of a page (registration time, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerCursor {
    pub registered_at: String,
    pub runner_id: String,
}

/// Which runners a list page holds; all `None`: every runner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunnerFilter {
    pub status: Option<aof_wire::runner::RunnerStatus>,
    /// A case-insensitive substring of the id, host, project dir, profile or tags.
    pub text: Option<String>,
}

/// One page of [`RunnerStore::list_runners_page`].
#[derive(Debug, Clone)]
pub struct RunnerPage {
    pub runners: Vec<RunnerInfo>,
    pub next: Option<RunnerCursor>,
}

/// One page of [`RunStore::list_runs_page`].
#[derive(Debug, Clone)]
pub struct RunPage {
    pub runs: Vec<Run>,
    /// Pass as `before` for the next (older) page; `None`: this was the last one.
    pub next: Option<i64>,
}

/// Runs: creation, claims, runners' reports.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Creates the run; for `start_session` also the session (`SessionExists` if taken).
    async fn create_run(&self, new: NewRun) -> StoreResult<RunRecord>;
    async fn get_run(&self, run_id: &str) -> StoreResult<Option<RunRecord>>;
    /// The session's most recently created run, in any status.
    async fn latest_run(&self, session_id: &str) -> StoreResult<Option<RunRecord>>;
    /// Runs newest first, optionally only of one status and/or one session.
    async fn list_runs(
        &self,
        status: Option<&str>,
        session_id: Option<&str>,
    ) -> StoreResult<Vec<Run>>;
    /// Up to `limit` runs in `list_runs` order whose row number is below `before` (the
    /// previous page's `next`), optionally only of one status and/or one session.
    async fn list_runs_page(
        &self,
        status: Option<RunStatus>,
        session_id: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<RunPage>;
    /// Atomically claims the oldest pending run this runner satisfies, with a new lease.
    async fn claim_run(
        &self,
        runner: &RunnerInfo,
        ttl: chrono::Duration,
    ) -> StoreResult<Option<RunRecord>> {
        self.claim_run_scoped(runner, ttl, &KeyScope::default())
            .await
    }
    /// `claim_run` for a runner whose key is limited to `scope`: a pending run outside it
    /// is passed over (it stays pending for another runner), never claimed.
    async fn claim_run_scoped(
        &self,
        runner: &RunnerInfo,
        ttl: chrono::Duration,
        scope: &KeyScope,
    ) -> StoreResult<Option<RunRecord>>;
    async fn report(&self, run_id: &str, who: &Writer, report: RunReport)
        -> StoreResult<RunRecord>;
}

/// Stops of runs and sessions, and their delivery to runners.
#[async_trait]
pub trait StopStore: Send + Sync {
    async fn stop_run(&self, run_id: &str) -> StoreResult<StopOutcome>;
    async fn stop_session(&self, session_id: &str) -> StoreResult<StopOutcome>;
    /// Sessions whose stop this runner has not been told of yet; marks them told.
    async fn take_stops(&self, runner_id: &str) -> StoreResult<Vec<String>>;
}

/// Leases and timeouts (called by the coordinator's background tasks and heartbeats).
#[async_trait]
pub trait LeaseStore: Send + Sync {
    async fn heartbeat(
        &self,
        runner_id: &str,
        leases: Option<&[HeldLease]>,
        ttl: chrono::Duration,
    ) -> StoreResult<Vec<String>>;
    async fn expire_leases(&self, policy: LeasePolicy) -> StoreResult<Vec<Resolved>>;
    async fn fail_unmatched(&self) -> StoreResult<Vec<Resolved>>;
    /// At boot: give every live lease at least one more `ttl`, so a restart kills nothing.
    async fn grace_leases(&self, ttl: chrono::Duration) -> StoreResult<u64>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn get_session(&self, session_id: &str) -> StoreResult<Option<Session>>;
    /// Every session, newest first.
    async fn list_sessions(&self) -> StoreResult<Vec<Session>> {
        let all = SessionFilter::default();
        Ok(self
            .list_sessions_page(&all, None, i64::MAX)
            .await?
            .sessions)
    }
    /// Up to `limit` sessions that pass `filter`, in `list_sessions` order (newest
    /// first) after `after`; `next` is where the following page starts (`None`: this
    /// was the last one).
    async fn list_sessions_page(
        &self,
        filter: &SessionFilter,
        after: Option<SessionCursor>,
        limit: i64,
    ) -> StoreResult<SessionPage>;
    async fn affinity(&self, session_id: &str) -> StoreResult<Option<Affinity>> {
        Ok(self.get_session(session_id).await?.map(sessions::affinity))
    }
    async fn bind(
        &self,
        session_id: &str,
        req: &BindRequest,
        lease_token: Option<&str>,
    ) -> StoreResult<Session>;
    async fn patch_metadata(&self, session_id: &str, patch: &MetadataPatch)
        -> StoreResult<Session>;
    async fn set_session_status(
        &self,
        session_id: &str,
        runner_id: &str,
        status: SessionStatus,
    ) -> StoreResult<Session>;
    async fn delete_session(&self, session_id: &str) -> StoreResult<DeleteOutcome>;
}

/// Events and the feed.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Live feed items, in cursor order, after they committed.
    fn subscribe(&self) -> broadcast::Receiver<FeedItem>;
    /// Appends one event; `Ok(None)` when its idempotency key was already stored.
    async fn append_event(
        &self,
        session_id: &str,
        write: EventWrite,
    ) -> StoreResult<Option<StoredEvent>>;
    /// Appends `writes` in order in ONE transaction, all or nothing; one result per
    /// write (`None`: its idempotency key was stored before, or earlier in this batch).
    async fn append_events(
        &self,
        session_id: &str,
        writes: Vec<EventWrite>,
    ) -> StoreResult<Vec<Option<StoredEvent>>>;
    async fn list_events(
        &self,
        session_id: &str,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> StoreResult<Vec<StoredEvent>>;
    async fn session_result(&self, session_id: &str) -> StoreResult<Option<SessionResult>>;
    async fn feed_after(
        &self,
        cursor: i64,
        session_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<FeedItem>>;
    async fn feed_head(&self) -> StoreResult<i64>;
}

/// `async_callback` children's ends, owed to their parents.
#[async_trait]
pub trait CallbackStore: Send + Sync {
    /// Undelivered callbacks for `parent`, oldest first.
    async fn pending_callbacks(&self, parent: &str) -> StoreResult<Vec<PendingCallback>>;
    /// Sessions that have undelivered callbacks (for the sweep after a restart).
    async fn callback_parents(&self) -> StoreResult<Vec<String>>;
}

#[async_trait]
pub trait RunnerStore: Send + Sync {
    /// The runner's row, deregistration mark and whether stops await it — one read per poll.
    async fn poll_state(&self, runner_id: &str) -> StoreResult<PollState>;
    async fn register_runner(
        &self,
        runner_id: &str,
        req: &RegisterRequest,
    ) -> StoreResult<RunnerInfo>;
    async fn list_runners(&self, stale_after: chrono::Duration) -> StoreResult<Vec<RunnerInfo>>;
    /// Up to `limit` runners passing `filter` after `after`, in `list_runners` order
    /// (registration time, then id).
    async fn list_runners_page(
        &self,
        stale_after: chrono::Duration,
        filter: &RunnerFilter,
        after: Option<RunnerCursor>,
        limit: i64,
    ) -> StoreResult<RunnerPage>;
    /// `self_ = true`: remove now. Otherwise mark for deregistration at its next poll.
    async fn remove_runner(&self, runner_id: &str, self_: bool) -> StoreResult<()>;
    /// True (and removes it) if the runner was marked for deregistration.
    async fn take_deregistration(&self, runner_id: &str) -> StoreResult<bool>;
    /// Removes runners silent for `remove_after`, failing the runs they held.
    async fn reap_runners(&self, remove_after: chrono::Duration) -> StoreResult<Vec<Resolved>>;
}

/// API keys, run session tokens, and which key registered a runner.
#[async_trait]
pub trait AuthStore: Send + Sync {
    async fn create_key(&self, key: &KeyRecord) -> StoreResult<()>;
    /// Every key, newest first, revoked ones included.
    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>>;
    async fn find_key(&self, id: &str) -> StoreResult<Option<KeyRecord>>;
    /// False when no such key; revoking twice keeps the first time.
    async fn revoke_key(&self, id: &str) -> StoreResult<bool>;
    async fn create_session_token(&self, token: &SessionTokenRecord) -> StoreResult<()>;
    async fn find_session_token(&self, id: &str) -> StoreResult<Option<SessionTokenRecord>>;
    /// Records which key registered a runner id (a runner key may act only as its own).
    async fn bind_runner_key(&self, runner_id: &str, key_id: &str) -> StoreResult<()>;
    async fn runner_key(&self, runner_id: &str) -> StoreResult<Option<String>>;
}

/// The dashboard's logins.
#[async_trait]
pub trait LoginStore: Send + Sync {
    /// Stores a browser session (login); drops expired ones first, so the table stays
    /// small without a sweep.
    async fn create_browser_session(&self, s: &BrowserSessionRecord) -> StoreResult<()>;
    /// By the SHA-256 of the cookie's secret; expired rows may still be returned (the
    /// caller checks `expires_at`).
    async fn find_browser_session(&self, hash: &str) -> StoreResult<Option<BrowserSessionRecord>>;
    /// Logout. False when there was no such session.
    async fn delete_browser_session(&self, hash: &str) -> StoreResult<bool>;
    /// Ends every browser session of a key (it was revoked); returns how many.
    async fn delete_browser_sessions_of_key(&self, key_id: &str) -> StoreResult<u64>;
}

/// The audit log (who did what; see the coordinator's `audit` module).
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends entries in order, all in one transaction.
    async fn append_audit(&self, entries: &[NewAuditEntry]) -> StoreResult<()>;
    /// Entries matching `q`, newest (highest id) first, at most `q.limit`.
    async fn list_audit(&self, q: &AuditQuery) -> StoreResult<Vec<aof_wire::audit::AuditEntry>>;
    /// Deletes entries older than `before`; returns how many.
    async fn purge_audit(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Stores a session imported from another system with its runs and events, as they
    /// were, in one transaction. `Ok(false)`: a session with that id exists already and
    /// nothing was written (importing again is a no-op).
    async fn import_session(&self, s: import::ImportedSession) -> StoreResult<bool>;
}

/// Health, counts, space, and wake-ups across coordinators.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Readiness: the database answers.
    async fn ping(&self) -> StoreResult<()>;
    async fn counts(&self) -> StoreResult<Counts>;
    /// Gives space freed by deletions back to the file system; returns the bytes freed.
    /// A backend whose own maintenance does this (PostgreSQL's autovacuum) keeps the default.
    async fn reclaim_space(&self) -> StoreResult<u64> {
        Ok(0)
    }
    /// Tells the *other* coordinators sharing this store that work may have appeared
    /// for runners (a new run, a stop, a requeue), so their parked long-polls look
    /// again at once. Called after the write committed; never blocks. A lost wake-up
    /// costs a runner at most one poll timeout, never a run.
    fn publish_wake(&self);
    /// Wake-ups published by other coordinators: the value changes on each (and after
    /// the store may have missed some). `None` when no other process can share this
    /// store (SQLite: one coordinator per database file).
    fn remote_wakes(&self) -> Option<watch::Receiver<u64>>;
}

/// Approvals of tool calls (`approvals` has the rules).
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Stores a new approval, its `approval_requested` event and the session's
    /// `waiting_approval`; or, for a `request_key` this run asked before, returns that
    /// approval and writes nothing (`false`).
    async fn request_approval(
        &self,
        new: approvals::NewApproval,
        who: Option<&Writer>,
    ) -> StoreResult<(aof_wire::approval::Approval, bool)>;
    async fn get_approval(&self, id: &str) -> StoreResult<Option<aof_wire::approval::Approval>>;
    async fn list_approvals(
        &self,
        q: &approvals::ApprovalQuery,
    ) -> StoreResult<Vec<aof_wire::approval::Approval>>;
    /// Decides a pending approval (`ApprovalDecided` if it is not pending).
    async fn decide_approval(
        &self,
        id: &str,
        verdict: approvals::Verdict,
    ) -> StoreResult<aof_wire::approval::Approval>;
    /// Ends the pending approvals whose deadline passed (`on_timeout`) or whose run is
    /// no longer running (denied); returns them as decided.
    async fn close_approvals(
        &self,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<aof_wire::approval::Approval>>;
}

/// The whole persistence contract: the sum of the narrow traits above, so a function
/// names the part it needs and a backend implements each part in the module that owns
/// its tables. `use aof_store::prelude::*` brings every part's methods into scope.
pub trait Store:
    RunStore
    + StopStore
    + LeaseStore
    + SessionStore
    + EventStore
    + CallbackStore
    + RunnerStore
    + AuthStore
    + LoginStore
    + AuditStore
    + ImportStore
    + AdminStore
    + ApprovalStore
    + 'static
{
}

impl<T> Store for T where
    T: RunStore
        + StopStore
        + LeaseStore
        + SessionStore
        + EventStore
        + CallbackStore
        + RunnerStore
        + AuthStore
        + LoginStore
        + AuditStore
        + ImportStore
        + AdminStore
        + ApprovalStore
        + 'static
{
}

/// Every store trait, for `use aof_store::prelude::*`.
pub mod prelude {
    pub use crate::{
        AdminStore, ApprovalStore, AuditStore, AuthStore, CallbackStore, EventStore, ImportStore,
        LeaseStore, LoginStore, RunStore, RunnerStore, SessionStore, StopStore, Store,
    };
}
