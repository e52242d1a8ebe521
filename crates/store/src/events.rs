//! Session events: what both stores decide about an append and how an event is read
//! back, written once.
//!
//! An append is checked in this order:
//! 1. no such session: `SessionNotFound`;
//! 2. an idempotency key the session stored before: a no-op (`Ok(None)`), even if the
//!    lease moved on since (a retry of a write that was accepted);
//! 3. with a lease token, [`fence`]: the run id is required, and the run must exist,
//!    belong to the session, be leased and hold that token.
//!
//! The SQLite store runs the rule here; PostgreSQL runs the same order in SQL
//! (`aof_append_event(s)`, migrations 0005 and 0006, one round trip each) and builds
//! its refusals with the constructors below.

use std::sync::Arc;

use aof_core::RunStatus;
use aof_wire::{
    sse::{self, EventPayload, FeedItem},
    Event, SessionResult, StoredEvent,
};

use crate::{Conflict, EventWrite, Illegal, RunRecord, StoreError, StoreResult};

/// A lease token without the run it is for.
pub fn need_run_id() -> StoreError {
    StoreError::Illegal(Illegal::NeedRunId)
}

/// The writer's lease on `run_id` is gone; `status` is the run's status now.
pub fn lease_lost(run_id: &str, status: RunStatus) -> StoreError {
    StoreError::LeaseConflict(Conflict::RunLeaseLost {
        run_id: run_id.to_string(),
        status,
    })
}

/// Rule 3 for `write` to `session_id`, given the row of `write.run_id` (`None`: no
/// such run, or no run id). A write without a lease token passes.
pub fn fence(session_id: &str, write: &EventWrite, run: Option<&RunRecord>) -> StoreResult<()> {
    let Some(token) = write.lease_token.as_deref() else {
        return Ok(());
    };
    let run_id = write.run_id.as_deref().ok_or_else(need_run_id)?;
    let run = run.ok_or(StoreError::RunNotFound)?;
    if run.run.session_id != session_id
        || !run.status.is_leased()
        || run.lease_token.as_deref() != Some(token)
    {
        return Err(lease_lost(run_id, run.status));
    }
    Ok(())
}

/// A stored event and its live feed item (`data`: its `sse::event_payload`).
pub fn appended(
    session_id: &str,
    cursor: i64,
    seq: i64,
    run_id: Option<String>,
    event: Event,
    data: Arc<str>,
) -> (StoredEvent, FeedItem) {
    let item = FeedItem {
        cursor,
        kind: sse::EVENT.to_string(),
        session_id: Some(session_id.to_string()),
        data,
    };
    let stored = StoredEvent {
        id: cursor,
        seq,
        run_id,
        event,
    };
    (stored, item)
}

/// The event inside a stored feed row's `data` (an `event` item's payload).
pub fn from_payload(data: &str) -> serde_json::Result<Event> {
    serde_json::from_str::<EventPayload>(data).map(|p| p.data)
}

/// A session's result: its latest `result` event's text and data.
pub fn session_result(latest_result: Event) -> SessionResult {
    SessionResult {
        result_text: latest_result.result_text,
        result_data: latest_result.result_data,
    }
}

/// `list_events` paging: events after cursor `after` (none: from the start), at most
/// `limit` of them (none, or negative: all).
pub fn page(after: Option<i64>, limit: Option<i64>) -> (i64, Option<i64>) {
    (after.unwrap_or(0), limit.filter(|l| *l >= 0))
}

#[cfg(test)]
pub(crate) mod tests {
    use aof_core::RunStatus;
    use aof_wire::{event::types, ExecutionMode, Run, RunType};

    use super::*;

    /// A run of `session` in `status`, holding `token`.
    pub(crate) fn run(session: &str, status: RunStatus, token: Option<&str>) -> RunRecord {
        RunRecord {
            run: Run {
                run_id: "run_1".into(),
                run_type: RunType::StartSession,
                session_id: session.into(),
                agent_name: None,
                parameters: serde_json::json!({"prompt": "hi"}),
                project_dir: None,
                parent_session_id: None,
                execution_mode: ExecutionMode::Sync,
                demands: None,
                status,
                runner_id: Some("r1".into()),
                error: None,
                created_at: "2027-01-15T08:00:00Z".into(),
                claimed_at: None,
                started_at: None,
                completed_at: None,
                timeout_at: None,
                attempt: 1,
                scope: None,
                resolved_agent_blueprint: None,
                lease_token: None,
                session_token: None,
                traceparent: None,
            },
            status,
            lease_token: token.map(str::to_string),
            lease_expires_at: None,
        }
    }

    fn write(run_id: Option<&str>, token: Option<&str>) -> EventWrite {
        EventWrite {
            event: Event::new(types::RESULT, "s1"),
            run_id: run_id.map(str::to_string),
            idempotency_key: None,
            lease_token: token.map(str::to_string),
        }
    }

    #[test]
    fn fence_table() {
        use RunStatus::*;
        let ok = "ok".to_string();
        let lost = |st: &str| format!("lease for run run_1 is no longer held (run is {st})");
        let cases: Vec<(&str, EventWrite, Option<RunRecord>, String)> = vec![
            ("no token: unchecked", write(None, None), None, ok.clone()),
            (
                "no token, any run",
                write(Some("run_1"), None),
                Some(run("s2", Failed, None)),
                ok.clone(),
            ),
            (
                "token without run id",
                write(None, Some("t")),
                None,
                "a lease token needs the x-aof-run-id header".into(),
            ),
            (
                "no such run",
                write(Some("run_1"), Some("t")),
                None,
                "Run not found".into(),
            ),
            (
                "holder, running",
                write(Some("run_1"), Some("t")),
                Some(run("s1", Running, Some("t"))),
                ok.clone(),
            ),
            (
                "holder, claimed",
                write(Some("run_1"), Some("t")),
                Some(run("s1", Claimed, Some("t"))),
                ok.clone(),
            ),
            (
                "holder, stopping",
                write(Some("run_1"), Some("t")),
                Some(run("s1", Stopping, Some("t"))),
                ok.clone(),
            ),
            (
                "another session's run",
                write(Some("run_1"), Some("t")),
                Some(run("s2", Running, Some("t"))),
                lost("running"),
            ),
            (
                "run ended (token kept)",
                write(Some("run_1"), Some("t")),
                Some(run("s1", Completed, Some("t"))),
                lost("completed"),
            ),
            (
                "run requeued",
                write(Some("run_1"), Some("t")),
                Some(run("s1", Pending, None)),
                lost("pending"),
            ),
            (
                "another attempt's token",
                write(Some("run_1"), Some("t")),
                Some(run("s1", Running, Some("t2"))),
                lost("running"),
            ),
        ];
        for (name, w, r, want) in cases {
            let got = match fence("s1", &w, r.as_ref()) {
                Ok(()) => ok.clone(),
                Err(e) => e.to_string(),
            };
            assert_eq!(got, want, "{name}");
        }
        let e = fence("s1", &write(Some("run_1"), Some("t")), None).unwrap_err();
        assert!(matches!(e, StoreError::RunNotFound), "{e:?}");
        let e = fence("s1", &write(None, Some("t")), None).unwrap_err();
        assert!(matches!(e, StoreError::Illegal(_)), "{e:?}");
        let e = lease_lost("run_9", RunStatus::Failed);
        assert!(matches!(e, StoreError::LeaseConflict(_)), "{e:?}");
    }

    #[test]
    fn appended_event_and_its_feed_item_read_back() {
        let mut ev = Event::new(types::RESULT, "s1");
        ev.result_text = Some("done".into());
        ev.result_data = serde_json::from_value(serde_json::json!({"n": 1})).unwrap();
        let data = sse::event_payload(&ev).unwrap();
        let (stored, item) = appended("s1", 7, 3, Some("run_1".into()), ev.clone(), data);
        assert_eq!(
            (stored.id, stored.seq, stored.run_id.as_deref()),
            (7, 3, Some("run_1"))
        );
        assert_eq!(
            (item.cursor, item.kind.as_str(), item.session_id.as_deref()),
            (7, "event", Some("s1"))
        );
        assert_eq!(from_payload(&item.data).unwrap(), ev, "payload round trip");
        assert!(from_payload("{}").is_err(), "a payload without data");
        let result = session_result(stored.event);
        assert_eq!(result.result_text.as_deref(), Some("done"));
        assert_eq!(result.result_data.unwrap()["n"], 1);
    }

    #[test]
    fn paging() {
        for (after, limit, want) in [
            (None, None, (0, None)),
            (Some(5), Some(10), (5, Some(10))),
            (Some(5), Some(0), (5, Some(0))),
            (None, Some(-1), (0, None)),
        ] {
            assert_eq!(page(after, limit), want, "{after:?} {limit:?}");
        }
    }
}
