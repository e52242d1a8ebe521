//! Retention: purge ended sessions that saw no activity for a while, with their runs and
//! events, then give the space back. Used by `POST /retention/purge` and, when
//! `AOF_RETENTION_DAYS` is set, by an hourly task, which also drops audit entries older
//! than `AOF_AUDIT_RETENTION_DAYS` (90 by default).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use aof_core::SessionStatus;
use aof_store::{StoreError, StoreResult};
use aof_wire::{api::PurgeResponse, Session};

use crate::AppState;

/// How often the retention task looks.
const EVERY: Duration = Duration::from_secs(3600);

/// Last activity: creation or the latest resume.
fn last_activity(s: &Session) -> Option<DateTime<Utc>> {
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).ok().map(|t| t.to_utc());
    let created = parse(&s.created_at);
    let resumed = s.last_resumed_at.as_deref().and_then(parse);
    created.max(resumed)
}

fn ended(s: &Session) -> bool {
    matches!(
        s.status,
        SessionStatus::Finished | SessionStatus::Failed | SessionStatus::Stopped
    )
}

pub(crate) async fn purge(
    st: &AppState,
    older_than: chrono::Duration,
    agent: Option<&str>,
    dry_run: bool,
) -> StoreResult<PurgeResponse> {
    let cutoff = Utc::now() - older_than;
    let candidates: Vec<String> = st
        .store
        .list_sessions()
        .await?
        .into_iter()
        .filter(|s| ended(s) && last_activity(s).is_some_and(|t| t <= cutoff))
        .filter(|s| agent.is_none_or(|a| s.agent_name.as_deref() == Some(a)))
        .map(|s| s.session_id)
        .collect();
    let mut out = PurgeResponse {
        ok: true,
        dry_run,
        session_ids: Vec::new(),
        events_count: 0,
        runs_count: 0,
        bytes_reclaimed: 0,
    };
    if dry_run {
        out.session_ids = candidates;
        return Ok(out);
    }
    for id in candidates {
        // The store re-checks under its write lock: a session resumed since the listing
        // is busy and stays; one deleted meanwhile is simply gone.
        match st.store.delete_session(&id).await {
            Ok(d) => {
                out.events_count += d.events_count;
                out.runs_count += d.runs_count;
                out.session_ids.push(id);
            }
            Err(StoreError::Busy(_) | StoreError::SessionNotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if !out.session_ids.is_empty() {
        out.bytes_reclaimed = st.store.reclaim_space().await?;
    }
    tracing::info!(
        sessions = out.session_ids.len(),
        events = out.events_count,
        runs = out.runs_count,
        bytes_reclaimed = out.bytes_reclaimed,
        "retention purge"
    );
    Ok(out)
}

/// The hourly purge for `AOF_RETENTION_DAYS` (sessions) and `AOF_AUDIT_RETENTION_DAYS`
/// (audit entries); the first one right after start.
pub(crate) async fn run(
    st: AppState,
    keep: Option<Duration>,
    keep_audit: Option<Duration>,
    cancel: CancellationToken,
) {
    let keep = keep.and_then(|k| chrono::Duration::from_std(k).ok());
    let keep_audit = keep_audit.and_then(|k| chrono::Duration::from_std(k).ok());
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Some(keep) = keep {
            if let Err(e) = purge(&st, keep, None, false).await {
                tracing::warn!(error = %e, "retention purge failed; trying again in an hour");
            }
        }
        if let Some(keep) = keep_audit {
            match st.store.purge_audit(Utc::now() - keep).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(entries = n, "audit log purge"),
                Err(e) => {
                    tracing::warn!(error = %e, "audit log purge failed; trying again in an hour")
                }
            }
        }
    }
}
