//! `StoreError`: what a store refuses, as data. The rules (`lifecycle`, `sessions`,
//! `events`, `callbacks`) and the backends build these values; the sentences a client
//! reads are written here, once, in the `Display` impls (the coordinator's
//! `ApiError` adds the HTTP status and code).

use std::path::PathBuf;

use aof_core::{IllegalTransition, RunStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Session '{0}' not found")]
    SessionNotFound(String),
    #[error("Session '{0}' already exists")]
    SessionExists(String),
    #[error("Run not found")]
    RunNotFound,
    #[error("Approval not found")]
    ApprovalNotFound,
    /// A second decision: the approval is no longer pending.
    #[error("Approval {approval_id} is already {}", .status.as_str())]
    ApprovalDecided {
        approval_id: String,
        status: aof_wire::approval::ApprovalStatus,
    },
    #[error("Runner not registered")]
    RunnerNotRegistered,
    #[error("Runner not found")]
    RunnerNotFound,
    #[error("duplicate runner {0}")]
    DuplicateRunner(String),
    /// The writer does not hold the run (wrong runner, or a stale lease token).
    #[error("{0}")]
    LeaseConflict(Conflict),
    #[error("{0}")]
    Illegal(Illegal),
    #[error("{0}")]
    Busy(Busy),
    /// The disk is full, or the data dir is read-only or failing: nothing was written.
    #[error("storage unavailable: {0}")]
    Storage(Storage),
    /// The database is not one this store opens: the AOF reference's schema. Only at open.
    #[error("{} was written by the AOF reference coordinator (its schema, not ours); AOF does not \
             change it in place. Import it into a new data dir and point the coordinator there: \
             `aof import --from-reference {} --data-dir NEW_DIR` (sessions, runs and events are \
             copied; the file is only read)", .0.display(), .0.display())]
    ForeignSchema(PathBuf),
    /// `backup`: the copy's path is taken.
    #[error("{} exists; backups never overwrite", .0.display())]
    BackupExists(PathBuf),
    /// `backup`: no database file to copy.
    #[error("no database at {}", .0.display())]
    NoDatabase(PathBuf),
    /// `connect`: the URL does not parse (the parser's complaint, password masked).
    #[error("invalid PostgreSQL URL: {0}")]
    InvalidUrl(String),
    #[error("store failure: {0}")]
    Internal(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Why a write to a run or session is refused as no longer (or never) the writer's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// A runner reported on a run it does not hold.
    #[error("Run {run_id} is not held by runner {runner_id}")]
    NotHeld { run_id: String, runner_id: String },
    #[error("Lease token for run {run_id} is stale")]
    StaleToken { run_id: String },
    /// The run was resolved without this runner (lease expired, runner removed).
    #[error("Run {run_id} is already {status}; the lease is no longer held")]
    Ended { run_id: String, status: RunStatus },
    /// A plan's compare-and-set found the run moved on from `expected`.
    #[error("run {run_id} changed concurrently (expected {expected})")]
    Moved { run_id: String, expected: RunStatus },
    /// An event write's lease on the run is gone; `status` is the run's now.
    #[error("lease for run {run_id} is no longer held (run is {status})")]
    RunLeaseLost { run_id: String, status: RunStatus },
    /// A bind with a lease token that holds none of the session's live runs.
    #[error("lease for session {session_id} is no longer held")]
    SessionLeaseLost { session_id: String },
    /// A runner set the status of a session another runner served last.
    #[error("Session {session_id} is served by another runner")]
    OtherRunner { session_id: String },
}

/// A request the run's or session's state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Illegal {
    #[error("Run cannot move from {} on {:?}", .0.from, .0.event)]
    Transition(IllegalTransition),
    /// A stop of a held run with no runner recorded.
    #[error("Run not claimed by any runner")]
    NotClaimed,
    #[error("Run cannot be stopped (status: {0})")]
    NotStoppable(RunStatus),
    /// A runner set a session's status while its run is live (that run is reported).
    #[error("Session {session_id} has an active run ({status}); report the run instead")]
    ActiveRun {
        session_id: String,
        status: RunStatus,
    },
    /// An event write with a lease token and no run id.
    #[error("a lease token needs the x-aof-run-id header")]
    NeedRunId,
}

/// The session is doing something that must end first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    /// A delete of a session that runs, idles or stops (`status` as stored).
    #[error("Session '{session_id}' is {status}. Stop session first.")]
    Active { session_id: String, status: String },
    /// Callbacks are handed only to an idle parent.
    #[error("Session '{session_id}' has run {run_id} in flight; callbacks wait until it ends")]
    RunInFlight { session_id: String, run_id: String },
    #[error("callback {id} for session '{session_id}' was delivered already")]
    Delivered { id: i64, session_id: String },
}

/// A write refused whole by the storage underneath: what failed, and the database's
/// own error text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{fault}: {cause}")]
pub struct Storage {
    pub fault: Fault,
    pub cause: String,
}

impl Storage {
    /// 507 rather than 503: space, not availability.
    pub fn full(&self) -> bool {
        matches!(self.fault, Fault::DataDiskFull | Fault::DatabaseDiskFull)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// SQLite: the disk under the data dir.
    #[error("the data disk is full")]
    DataDiskFull,
    #[error("the data dir cannot be written")]
    DataDirReadOnly,
    /// PostgreSQL: the server's disk.
    #[error("the database disk is full")]
    DatabaseDiskFull,
    #[error("the database cannot be written")]
    DatabaseReadOnly,
    #[error("the database is unreachable")]
    DatabaseUnreachable,
    /// PostgreSQL broke a lock cycle or a serialization conflict by aborting this write;
    /// nothing was written and a retry succeeds.
    #[error("the database aborted the write on a lock conflict")]
    DatabaseConflict,
}

impl StoreError {
    pub fn storage(fault: Fault, cause: impl std::fmt::Display) -> StoreError {
        StoreError::Storage(Storage {
            fault,
            cause: cause.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use aof_core::RunEvent;

    use super::*;

    /// The sentences clients read, as they were when each store wrote its own.
    #[test]
    fn wording() {
        let (r, s) = ("run_1".to_string(), "ses_1".to_string());
        let table: Vec<(StoreError, &str)> = vec![
            (
                StoreError::LeaseConflict(Conflict::NotHeld {
                    run_id: r.clone(),
                    runner_id: "w".into(),
                }),
                "Run run_1 is not held by runner w",
            ),
            (
                StoreError::LeaseConflict(Conflict::StaleToken { run_id: r.clone() }),
                "Lease token for run run_1 is stale",
            ),
            (
                StoreError::LeaseConflict(Conflict::Ended {
                    run_id: r.clone(),
                    status: RunStatus::Failed,
                }),
                "Run run_1 is already failed; the lease is no longer held",
            ),
            (
                StoreError::LeaseConflict(Conflict::Moved {
                    run_id: r.clone(),
                    expected: RunStatus::Running,
                }),
                "run run_1 changed concurrently (expected running)",
            ),
            (
                StoreError::LeaseConflict(Conflict::RunLeaseLost {
                    run_id: r.clone(),
                    status: RunStatus::Pending,
                }),
                "lease for run run_1 is no longer held (run is pending)",
            ),
            (
                StoreError::LeaseConflict(Conflict::SessionLeaseLost {
                    session_id: s.clone(),
                }),
                "lease for session ses_1 is no longer held",
            ),
            (
                StoreError::LeaseConflict(Conflict::OtherRunner {
                    session_id: s.clone(),
                }),
                "Session ses_1 is served by another runner",
            ),
            (
                StoreError::Illegal(Illegal::Transition(IllegalTransition {
                    from: RunStatus::Completed,
                    event: RunEvent::LeaseExpired { requeue: true },
                })),
                "Run cannot move from completed on LeaseExpired { requeue: true }",
            ),
            (
                StoreError::Illegal(Illegal::NotClaimed),
                "Run not claimed by any runner",
            ),
            (
                StoreError::Illegal(Illegal::NotStoppable(RunStatus::Completed)),
                "Run cannot be stopped (status: completed)",
            ),
            (
                StoreError::Illegal(Illegal::ActiveRun {
                    session_id: s.clone(),
                    status: RunStatus::Claimed,
                }),
                "Session ses_1 has an active run (claimed); report the run instead",
            ),
            (
                StoreError::Illegal(Illegal::NeedRunId),
                "a lease token needs the x-aof-run-id header",
            ),
            (
                StoreError::Busy(Busy::Active {
                    session_id: s.clone(),
                    status: "idle".into(),
                }),
                "Session 'ses_1' is idle. Stop session first.",
            ),
            (
                StoreError::Busy(Busy::RunInFlight {
                    session_id: s.clone(),
                    run_id: r.clone(),
                }),
                "Session 'ses_1' has run run_1 in flight; callbacks wait until it ends",
            ),
            (
                StoreError::Busy(Busy::Delivered {
                    id: 7,
                    session_id: s.clone(),
                }),
                "callback 7 for session 'ses_1' was delivered already",
            ),
            (
                StoreError::storage(Fault::DataDiskFull, "database or disk is full"),
                "storage unavailable: the data disk is full: database or disk is full",
            ),
            (
                StoreError::storage(Fault::DatabaseUnreachable, "io"),
                "storage unavailable: the database is unreachable: io",
            ),
            (
                StoreError::BackupExists("/b.db".into()),
                "/b.db exists; backups never overwrite",
            ),
            (
                StoreError::NoDatabase("/a.db".into()),
                "no database at /a.db",
            ),
        ];
        for (e, want) in table {
            assert_eq!(e.to_string(), want, "{e:?}");
        }
        let foreign = StoreError::ForeignSchema("/d/o.db".into()).to_string();
        assert!(
            foreign.starts_with("/d/o.db was written by the AOF reference coordinator")
                && foreign.contains("`aof import --from-reference /d/o.db --data-dir NEW_DIR`"),
            "{foreign}"
        );
        let fulls = [Fault::DataDiskFull, Fault::DatabaseDiskFull];
        for fault in [
            Fault::DataDiskFull,
            Fault::DataDirReadOnly,
            Fault::DatabaseDiskFull,
            Fault::DatabaseReadOnly,
            Fault::DatabaseUnreachable,
        ] {
            let s = Storage {
                fault,
                cause: String::new(),
            };
            assert_eq!(s.full(), fulls.contains(&fault), "{fault:?}");
        }
    }
}
