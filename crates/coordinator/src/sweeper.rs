//! Background sweeps: expired leases, runs no runner matched in time, silent runners,
//! approvals past their deadline or of ended runs.
//! Policy: on error log and try again next tick; on cancel return at once.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use aof_store::LeasePolicy;

use crate::AppState;

pub(crate) async fn run(state: AppState, cancel: CancellationToken) {
    let cfg = state.cfg.clone();
    let mut tick = tokio::time::interval(cfg.sweep_interval.max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let policy = LeasePolicy {
        ttl: chrono::Duration::from_std(cfg.lease_ttl).unwrap_or(chrono::Duration::seconds(180)),
        recovery: cfg.recovery,
    };
    let remove_after =
        chrono::Duration::from_std(cfg.remove_threshold).unwrap_or(chrono::Duration::seconds(600));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        match state.store.expire_leases(policy).await {
            Ok(done) if !done.is_empty() => {
                for r in &done {
                    tracing::warn!(run_id = %r.run_id, session_id = %r.session_id, from = %r.from, to = %r.to, "lease expired");
                }
                state.wake_runners();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "lease sweep failed"),
        }
        match state.store.fail_unmatched().await {
            Ok(done) => {
                for r in &done {
                    tracing::warn!(run_id = %r.run_id, session_id = %r.session_id, "no runner matched in time; run failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "no-match sweep failed"),
        }
        match state.store.reap_runners(remove_after).await {
            Ok(done) => {
                for r in &done {
                    tracing::warn!(run_id = %r.run_id, "runner removed; run failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "runner reap failed"),
        }
        // After the lease sweep: an approval whose run just ended is denied this tick.
        if let Err(e) = crate::approvals::sweep(&state).await {
            tracing::warn!(error = %e, "approval sweep failed");
        }
    }
}
