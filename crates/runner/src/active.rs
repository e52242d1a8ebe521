//! The runs this runner is executing: their leases (for heartbeats), how to stop them,
//! and the slot count the poll loop waits on.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use aof_wire::{HeldLease, Run};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Why an execution was asked to stop; decides what (if anything) it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// The coordinator asked (a user stopped the session): report `stopped`, SIGTERM.
    Requested,
    /// This runner is shutting down and the drain deadline passed: unless the executor
    /// completed anyway, hand the run back (`release`) so another runner takes it.
    Handback,
    /// The lease is gone (revoked, or a write was fenced off): report nothing.
    LeaseLost,
}

/// How the supervisor and the heartbeat reach into one execution.
#[derive(Debug)]
pub(crate) struct RunControl {
    /// Asks the executor to stop gracefully.
    pub cancel: CancellationToken,
    /// Ends every retry loop of the run: fired on lease loss, and (as a child of the
    /// runner's abandon token) when shutdown stops waiting for deliveries.
    pub interrupt: CancellationToken,
    /// std Mutex: only set and read, never held across an await.
    reason: Mutex<Option<StopReason>>,
}

impl RunControl {
    pub(crate) fn new(abandon: &CancellationToken) -> RunControl {
        RunControl {
            cancel: CancellationToken::new(),
            interrupt: abandon.child_token(),
            reason: Mutex::new(None),
        }
    }

    /// Stop with `reason`. The first reason wins, except that a lost lease overrides any
    /// other: once it is gone, no report could be accepted anyway.
    pub(crate) fn stop(&self, reason: StopReason) {
        {
            let mut cur = self.reason.lock().unwrap_or_else(|p| p.into_inner());
            if cur.is_none() || reason == StopReason::LeaseLost {
                *cur = Some(reason);
            }
        }
        if reason == StopReason::LeaseLost {
            self.interrupt.cancel();
        }
        self.cancel.cancel();
    }

    pub(crate) fn reason(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lease_lost(&self) -> bool {
        self.reason() == Some(StopReason::LeaseLost)
    }
}

#[derive(Debug)]
struct Entry {
    session_id: String,
    lease_token: Option<String>,
    control: Arc<RunControl>,
}

#[derive(Debug, Default)]
pub(crate) struct Active {
    /// std Mutex: every critical section is a map operation, never an await.
    runs: Mutex<HashMap<String, Entry>>,
    /// Signalled when a run ends, to wake a poll loop waiting for a free slot.
    freed: Notify,
}

impl Active {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic elsewhere cannot leave the map half-updated; keep serving it.
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Track `run`; `None` if it is already running here (a re-delivered claim).
    pub(crate) fn insert(&self, run: &Run, abandon: &CancellationToken) -> Option<Arc<RunControl>> {
        let mut runs = self.lock();
        if runs.contains_key(&run.run_id) {
            return None;
        }
        let control = Arc::new(RunControl::new(abandon));
        runs.insert(
            run.run_id.clone(),
            Entry {
                session_id: run.session_id.clone(),
                lease_token: run.lease_token.clone(),
                control: control.clone(),
            },
        );
        Some(control)
    }

    pub(crate) fn remove(&self, run_id: &str) {
        self.lock().remove(run_id);
        // notify_one stores a permit, so a poll loop that checks later still wakes.
        self.freed.notify_one();
    }

    /// Sessions with a run here now (their workspaces are in use).
    pub(crate) fn sessions(&self) -> std::collections::HashSet<String> {
        self.lock().values().map(|e| e.session_id.clone()).collect()
    }

    /// How many runs of `session_id` are here now.
    pub(crate) fn runs_of_session(&self, session_id: &str) -> usize {
        self.lock()
            .values()
            .filter(|e| e.session_id == session_id)
            .count()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Wait until fewer than `max` runs are active.
    pub(crate) async fn slot_free(&self, max: usize) {
        loop {
            if self.len() < max {
                return;
            }
            self.freed.notified().await;
        }
    }

    pub(crate) fn leases(&self) -> Vec<HeldLease> {
        let mut leases: Vec<HeldLease> = self
            .lock()
            .iter()
            .filter_map(|(run_id, e)| {
                e.lease_token.as_ref().map(|t| HeldLease {
                    run_id: run_id.clone(),
                    lease_token: t.clone(),
                })
            })
            .collect();
        leases.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        leases
    }

    /// Stop the runs of the listed sessions; returns how many were found.
    pub(crate) fn stop_sessions(&self, sessions: &[String], reason: StopReason) -> usize {
        let runs = self.lock();
        let mut n = 0;
        for e in runs.values().filter(|e| sessions.contains(&e.session_id)) {
            e.control.stop(reason);
            n += 1;
        }
        n
    }

    /// The coordinator no longer recognises these leases.
    pub(crate) fn revoke(&self, run_ids: &[String]) {
        let runs = self.lock();
        for id in run_ids {
            if let Some(e) = runs.get(id) {
                e.control.stop(StopReason::LeaseLost);
            }
        }
    }

    pub(crate) fn stop_all(&self, reason: StopReason) {
        for e in self.lock().values() {
            e.control.stop(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_lost_overrides_other_reasons() {
        let abandon = CancellationToken::new();
        let c = RunControl::new(&abandon);
        c.stop(StopReason::Requested);
        c.stop(StopReason::Handback);
        assert_eq!(c.reason(), Some(StopReason::Requested));
        assert!(c.cancel.is_cancelled() && !c.interrupt.is_cancelled());
        c.stop(StopReason::LeaseLost);
        assert!(c.lease_lost() && c.interrupt.is_cancelled());

        let c = RunControl::new(&abandon);
        abandon.cancel();
        assert!(c.interrupt.is_cancelled() && !c.cancel.is_cancelled());
    }
}
