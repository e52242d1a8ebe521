//! Session status: derived from what happens to the session's runs.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::RunStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Pending,
    Running,
    /// A run waits for a person to approve or deny a tool call (AOF-RS).
    WaitingApproval,
    Idle,
    Finished,
    Failed,
    Stopping,
    Stopped,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 8] = [
        SessionStatus::Pending,
        SessionStatus::Running,
        SessionStatus::WaitingApproval,
        SessionStatus::Idle,
        SessionStatus::Finished,
        SessionStatus::Failed,
        SessionStatus::Stopping,
        SessionStatus::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Pending => "pending",
            SessionStatus::Running => "running",
            SessionStatus::WaitingApproval => "waiting_approval",
            SessionStatus::Idle => "idle",
            SessionStatus::Finished => "finished",
            SessionStatus::Failed => "failed",
            SessionStatus::Stopping => "stopping",
            SessionStatus::Stopped => "stopped",
        }
    }

    /// A session in one of these states has a run in flight and cannot take another.
    pub fn is_busy(self) -> bool {
        matches!(
            self,
            SessionStatus::Pending
                | SessionStatus::Running
                | SessionStatus::WaitingApproval
                | SessionStatus::Stopping
        )
    }

    /// The session status that follows from its current run moving to `run`.
    pub fn from_run(run: RunStatus) -> SessionStatus {
        match run {
            RunStatus::Pending | RunStatus::Claimed => SessionStatus::Pending,
            RunStatus::Running => SessionStatus::Running,
            RunStatus::Stopping => SessionStatus::Stopping,
            RunStatus::Completed => SessionStatus::Finished,
            RunStatus::Failed => SessionStatus::Failed,
            RunStatus::Stopped => SessionStatus::Stopped,
        }
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SessionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown session status '{s}'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_runs_and_round_trips() {
        assert_eq!(
            SessionStatus::from_run(RunStatus::Claimed),
            SessionStatus::Pending
        );
        assert_eq!(
            SessionStatus::from_run(RunStatus::Running),
            SessionStatus::Running
        );
        assert_eq!(
            SessionStatus::from_run(RunStatus::Completed),
            SessionStatus::Finished
        );
        assert_eq!(
            SessionStatus::from_run(RunStatus::Stopped),
            SessionStatus::Stopped
        );
        assert!(SessionStatus::Running.is_busy());
        assert!(!SessionStatus::Finished.is_busy());
        for st in SessionStatus::ALL {
            assert_eq!(st.as_str().parse::<SessionStatus>(), Ok(st));
        }
    }
}
