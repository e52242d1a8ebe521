//! The run lifecycle: the one place that says which moves are legal.
//!
//! ```text
//!  pending ──claim──▶ claimed ──started──▶ running ──completed──▶ completed
//!     │                 │  │                 │ │
//!     │ stop            │  └──────fail───────┼─┴──────────────────▶ failed
//!     ▼                 ▼ stop               ▼ stop
//!  stopped ◀──stopped── stopping ◀───────────┘
//!     ▲                                       (lease expiry: claimed/running → pending
//!     └── lease expiry while stopping          or failed by RecoveryMode; stopping → stopped)
//!
//!  release (a draining runner hands back what it could not finish in time):
//!  claimed/running → pending (another runner's claim is attempt n+1), or failed when
//!  RecoveryMode is `none`; stopping → stopped (a stop was asked for anyway)
//! ```

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Run status as it appears on the wire (AOF names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Claimed,
    Running,
    Stopping,
    Completed,
    Failed,
    Stopped,
}

/// Something that happens to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEvent {
    /// A runner took it and now holds the lease.
    Claim,
    /// The runner says execution began.
    Started,
    Completed,
    Failed,
    /// The runner confirms it stopped the execution.
    Stopped,
    /// A client asked to stop.
    StopRequested,
    /// The lease ran out; `requeue` says whether policy allows another attempt.
    LeaseExpired {
        requeue: bool,
    },
    /// No runner matched its demands in time.
    NoMatchTimeout,
    /// The runner holding the lease stopped the execution unfinished and gives the run
    /// back (graceful drain on shutdown); `requeue` says whether policy allows another
    /// attempt.
    Released {
        requeue: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run cannot go from {from} on {event:?}")]
pub struct IllegalTransition {
    pub from: RunStatus,
    pub event: RunEvent,
}

impl RunStatus {
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Pending,
        RunStatus::Claimed,
        RunStatus::Running,
        RunStatus::Stopping,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Claimed => "claimed",
            RunStatus::Running => "running",
            RunStatus::Stopping => "stopping",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Stopped => "stopped",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Stopped
        )
    }

    /// States in which a runner holds a lease on the run.
    pub fn is_leased(self) -> bool {
        matches!(
            self,
            RunStatus::Claimed | RunStatus::Running | RunStatus::Stopping
        )
    }

    /// The transition function. Pure: the store calls it, then persists with compare-and-set.
    pub fn on(self, event: RunEvent) -> Result<RunStatus, IllegalTransition> {
        use RunEvent as E;
        use RunStatus as S;
        let next = match (self, event) {
            (S::Pending, E::Claim) => S::Claimed,
            (S::Pending, E::StopRequested) => S::Stopped,
            (S::Pending, E::NoMatchTimeout) => S::Failed,
            (S::Claimed, E::Started) => S::Running,
            (S::Claimed | S::Running, E::StopRequested) => S::Stopping,
            (S::Claimed | S::Running | S::Stopping, E::Completed) => S::Completed,
            (S::Claimed | S::Running | S::Stopping, E::Failed) => S::Failed,
            (S::Claimed | S::Running | S::Stopping, E::Stopped) => S::Stopped,
            (S::Claimed | S::Running, E::LeaseExpired { requeue: true }) => S::Pending,
            (S::Claimed | S::Running, E::LeaseExpired { requeue: false }) => S::Failed,
            (S::Stopping, E::LeaseExpired { .. }) => S::Stopped,
            (S::Claimed | S::Running, E::Released { requeue: true }) => S::Pending,
            (S::Claimed | S::Running, E::Released { requeue: false }) => S::Failed,
            (S::Stopping, E::Released { .. }) => S::Stopped,
            // A repeated stop request or a repeated start report changes nothing.
            (S::Stopping, E::StopRequested) => S::Stopping,
            (S::Running, E::Started) => S::Running,
            (from, event) => return Err(IllegalTransition { from, event }),
        };
        Ok(next)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown run status '{s}'"))
    }
}

/// What happens to a leased run whose lease expires (`RUN_RECOVERY_MODE`).
///
/// Mapping of the reference's values onto lease rules:
/// - `none`: an expired lease fails the run; nothing is retried.
/// - `stale` (default): an expired lease puts a run back to `pending` only if it never
///   reported `started` (the runner died before doing work); a started run fails.
/// - `all`: every expired lease puts the run back to `pending` for another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryMode {
    None,
    #[default]
    Stale,
    All,
}

impl RecoveryMode {
    /// Whether a run its runner hands back unfinished goes back to `pending`. The runner
    /// stopped the executor itself, so unlike a lost lease no work is still going on
    /// somewhere: only `none` (never run anything twice) refuses.
    pub fn requeue_released(self) -> bool {
        self != RecoveryMode::None
    }

    pub fn requeue(self, status: RunStatus) -> bool {
        match self {
            RecoveryMode::None => false,
            RecoveryMode::Stale => status == RunStatus::Claimed,
            RecoveryMode::All => true,
        }
    }
}

impl FromStr for RecoveryMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(RecoveryMode::None),
            "stale" => Ok(RecoveryMode::Stale),
            "all" => Ok(RecoveryMode::All),
            other => Err(format!(
                "unknown RUN_RECOVERY_MODE '{other}' (expected none, stale or all)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunEvent as E;
    use RunStatus as S;

    #[test]
    fn transition_table() {
        let legal = [
            (S::Pending, E::Claim, S::Claimed),
            (S::Pending, E::StopRequested, S::Stopped),
            (S::Pending, E::NoMatchTimeout, S::Failed),
            (S::Claimed, E::Started, S::Running),
            (S::Claimed, E::Completed, S::Completed),
            (S::Running, E::Completed, S::Completed),
            (S::Running, E::Failed, S::Failed),
            (S::Running, E::StopRequested, S::Stopping),
            (S::Stopping, E::Stopped, S::Stopped),
            (S::Stopping, E::Completed, S::Completed),
            (S::Running, E::LeaseExpired { requeue: true }, S::Pending),
            (S::Running, E::LeaseExpired { requeue: false }, S::Failed),
            (S::Stopping, E::LeaseExpired { requeue: true }, S::Stopped),
            (S::Claimed, E::Released { requeue: true }, S::Pending),
            (S::Running, E::Released { requeue: true }, S::Pending),
            (S::Running, E::Released { requeue: false }, S::Failed),
            (S::Stopping, E::Released { requeue: true }, S::Stopped),
        ];
        for (from, ev, to) in legal {
            assert_eq!(from.on(ev), Ok(to), "{from} on {ev:?}");
        }
        let illegal = [
            (S::Pending, E::Started),
            (S::Pending, E::Completed),
            (S::Completed, E::Failed),
            (S::Completed, E::StopRequested),
            (S::Failed, E::Claim),
            (S::Stopped, E::Started),
            (S::Running, E::Claim),
            (S::Pending, E::LeaseExpired { requeue: true }),
            // Only the lease holder can hand a run back; a pending run has none.
            (S::Pending, E::Released { requeue: true }),
        ];
        for (from, ev) in illegal {
            assert_eq!(from.on(ev), Err(IllegalTransition { from, event: ev }));
        }
    }

    #[test]
    fn terminal_states_accept_nothing() {
        let events = [
            E::Claim,
            E::Started,
            E::Completed,
            E::Failed,
            E::Stopped,
            E::StopRequested,
            E::LeaseExpired { requeue: true },
            E::NoMatchTimeout,
            E::Released { requeue: true },
            E::Released { requeue: false },
        ];
        for st in S::ALL.into_iter().filter(|s| s.is_terminal()) {
            for ev in events {
                assert!(st.on(ev).is_err(), "{st} accepted {ev:?}");
            }
        }
    }

    #[test]
    fn status_round_trips_and_recovery_mapping() {
        for st in S::ALL {
            assert_eq!(st.as_str().parse::<S>(), Ok(st));
            assert_eq!(
                serde_json::to_value(st).unwrap(),
                serde_json::json!(st.as_str())
            );
        }
        assert!("bogus".parse::<S>().is_err());
        assert_eq!("ALL".parse::<RecoveryMode>(), Ok(RecoveryMode::All));
        assert!(!RecoveryMode::None.requeue(S::Claimed));
        assert!(RecoveryMode::Stale.requeue(S::Claimed));
        assert!(!RecoveryMode::Stale.requeue(S::Running));
        assert!(RecoveryMode::All.requeue(S::Running));
        assert!(!RecoveryMode::None.requeue_released());
        assert!(RecoveryMode::Stale.requeue_released());
        assert!(RecoveryMode::All.requeue_released());
    }
}
