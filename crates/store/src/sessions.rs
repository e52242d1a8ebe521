//! Sessions' rules, written once for every backend: what a bind and a metadata patch
//! make of a session, when a runner may set a session's status, when a session may be
//! deleted, and how the session list is paged. A backend loads the rows in its
//! transaction, calls these, and writes the session they return; nothing here touches
//! a database.

use aof_core::SessionStatus;
use aof_wire::{
    session::{Affinity, BindRequest, MetadataPatch},
    Session,
};

use crate::{
    Busy, Conflict, Illegal, RunRecord, SessionCursor, SessionPage, StoreError, StoreResult,
};

pub fn not_found(session_id: &str) -> StoreError {
    StoreError::SessionNotFound(session_id.to_string())
}

/// A runner binds its executor's session: placement and executor session are written
/// (`project_dir` only when given) and the session is running. `current`: the session
/// and how many of its live runs hold the writer's lease token; `token_sent` is false
/// for a reference runner, which sends none.
pub fn on_bind(
    session_id: &str,
    current: Option<(Session, i64)>,
    req: &BindRequest,
    token_sent: bool,
) -> StoreResult<Session> {
    let (mut s, held) = current.ok_or_else(|| not_found(session_id))?;
    if token_sent && held == 0 {
        return Err(StoreError::LeaseConflict(Conflict::SessionLeaseLost {
            session_id: session_id.to_string(),
        }));
    }
    s.executor_session_id = Some(req.executor_session_id.clone());
    s.hostname = Some(req.hostname.clone());
    s.executor_profile = Some(req.executor_profile.clone());
    if req.project_dir.is_some() {
        s.project_dir.clone_from(&req.project_dir);
    }
    s.status = SessionStatus::Running;
    Ok(s)
}

/// `PATCH /sessions/{id}/metadata`: every non-null field of the patch is written, the
/// rest (and the status) stay.
pub fn on_patch(
    session_id: &str,
    current: Option<Session>,
    p: &MetadataPatch,
) -> StoreResult<Session> {
    let mut s = current.ok_or_else(|| not_found(session_id))?;
    for (field, value) in [
        (&mut s.project_dir, &p.project_dir),
        (&mut s.agent_name, &p.agent_name),
        (&mut s.last_resumed_at, &p.last_resumed_at),
        (&mut s.executor_session_id, &p.executor_session_id),
        (&mut s.executor_profile, &p.executor_profile),
        (&mut s.hostname, &p.hostname),
    ] {
        if value.is_some() {
            field.clone_from(value);
        }
    }
    Ok(s)
}

/// A runner sets a session's status (`/runner/sessions/{id}/status`, e.g. an idle
/// session it closed). Only a registered runner, only the one that served the session's
/// `latest` run, and only once that run ended (a live run is reported, not this).
/// Returns the session as loaded, the answer when the status does not change.
pub fn on_runner_status(
    session_id: &str,
    runner_id: &str,
    runner_registered: bool,
    current: Option<Session>,
    latest: Option<&RunRecord>,
) -> StoreResult<Session> {
    if !runner_registered {
        return Err(StoreError::RunnerNotRegistered);
    }
    let s = current.ok_or_else(|| not_found(session_id))?;
    if let Some(run) = latest {
        if run.run.runner_id.as_deref() != Some(runner_id) {
            return Err(StoreError::LeaseConflict(Conflict::OtherRunner {
                session_id: session_id.to_string(),
            }));
        }
        if !run.status.is_terminal() {
            return Err(StoreError::Illegal(Illegal::ActiveRun {
                session_id: session_id.to_string(),
                status: run.status,
            }));
        }
    }
    Ok(s)
}

/// Whether a session may be deleted: not while it runs, idles (a runner may hold its
/// process) or stops, nor while a runner holds one of its runs. `current`: the session
/// and how many of its runs are held.
pub fn check_delete(session_id: &str, current: Option<(Session, i64)>) -> StoreResult<()> {
    let (s, held_runs) = current.ok_or_else(|| not_found(session_id))?;
    let busy = matches!(
        s.status,
        SessionStatus::Running
            | SessionStatus::WaitingApproval
            | SessionStatus::Idle
            | SessionStatus::Stopping
    );
    if busy || held_runs > 0 {
        return Err(StoreError::Busy(Busy::Active {
            session_id: session_id.to_string(),
            status: s.status.to_string(),
        }));
    }
    Ok(())
}

/// The `session_deleted` feed item's data.
pub fn deleted(session_id: &str, runs_deleted: u64) -> serde_json::Value {
    serde_json::json!({"session_id": session_id, "runs_deleted": runs_deleted})
}

/// One page of the session list from up to `limit + 1` rows (each with its row number,
/// in list order, as `statements::sessions_page` reads them): the extra row only says
/// that another page follows, starting after the page's last session.
pub fn page(mut rows: Vec<(Session, i64)>, limit: i64) -> SessionPage {
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = match more {
        true => rows.last().map(|(s, row)| SessionCursor {
            created_at: s.created_at.clone(),
            row: *row,
        }),
        false => None,
    };
    SessionPage {
        sessions: rows.into_iter().map(|(s, _)| s).collect(),
        next,
    }
}

/// Where a session's runner lives (`GET /sessions/{id}/affinity`).
pub fn affinity(s: Session) -> Affinity {
    Affinity {
        session_id: s.session_id,
        hostname: s.hostname,
        project_dir: s.project_dir,
        executor_profile: s.executor_profile,
    }
}

#[cfg(test)]
mod tests {
    use aof_core::RunStatus;

    use super::*;

    fn ses(status: &str) -> Session {
        Session {
            session_id: "s1".into(),
            status: status.parse().unwrap(),
            created_at: "2027-01-15T08:00:00Z".into(),
            project_dir: Some("/old".into()),
            agent_name: Some("a".into()),
            last_resumed_at: None,
            parent_session_id: Some("p".into()),
            executor_session_id: Some("e0".into()),
            executor_profile: None,
            hostname: Some("h0".into()),
        }
    }

    fn run(status: RunStatus, runner: Option<&str>) -> RunRecord {
        let mut r = crate::events::tests::run("s1", status, None);
        r.run.runner_id = runner.map(str::to_string);
        r
    }

    #[test]
    fn bind() {
        let req = |dir: Option<&str>| BindRequest {
            executor_session_id: "e1".into(),
            hostname: "h1".into(),
            executor_profile: "x1".into(),
            project_dir: dir.map(str::to_string),
        };
        // No token (reference runner) and a held token bind alike.
        for (held, sent) in [(0, false), (1, false), (1, true)] {
            let s = on_bind("s1", Some((ses("pending"), held)), &req(None), sent).unwrap();
            let want = Session {
                status: SessionStatus::Running,
                executor_session_id: Some("e1".into()),
                hostname: Some("h1".into()),
                executor_profile: Some("x1".into()),
                ..ses("pending")
            };
            assert_eq!(s, want, "{held} {sent}: project_dir kept when not given");
        }
        let s = on_bind("s1", Some((ses("idle"), 0)), &req(Some("/new")), false).unwrap();
        assert_eq!(s.project_dir.as_deref(), Some("/new"));
        let e = on_bind("s1", Some((ses("running"), 0)), &req(None), true).unwrap_err();
        assert!(
            matches!(&e, StoreError::LeaseConflict(Conflict::SessionLeaseLost { session_id }) if session_id == "s1")
        );
        let e = on_bind("s1", None, &req(None), true).unwrap_err();
        assert!(
            matches!(&e, StoreError::SessionNotFound(id) if id == "s1"),
            "missing first"
        );
    }

    #[test]
    fn metadata_patch_writes_only_given_fields() {
        let empty = MetadataPatch::default();
        assert_eq!(
            on_patch("s1", Some(ses("idle")), &empty).unwrap(),
            ses("idle")
        );
        let p = MetadataPatch {
            project_dir: Some("/p".into()),
            agent_name: None,
            last_resumed_at: Some("2027-01-15T09:00:00Z".into()),
            executor_session_id: None,
            executor_profile: Some("x".into()),
            hostname: Some("h".into()),
        };
        let want = Session {
            project_dir: Some("/p".into()),
            last_resumed_at: Some("2027-01-15T09:00:00Z".into()),
            executor_profile: Some("x".into()),
            hostname: Some("h".into()),
            ..ses("idle")
        };
        assert_eq!(on_patch("s1", Some(ses("idle")), &p).unwrap(), want);
        let e = on_patch("s1", None, &p).unwrap_err();
        assert!(matches!(&e, StoreError::SessionNotFound(id) if id == "s1"));
    }

    #[test]
    fn runner_sets_status() {
        use RunStatus::*;
        let ok = |latest: Option<RunRecord>| {
            on_runner_status("s1", "r1", true, Some(ses("idle")), latest.as_ref())
        };
        assert_eq!(ok(None).unwrap(), ses("idle"), "no run yet");
        for st in [Completed, Failed, Stopped] {
            assert_eq!(ok(Some(run(st, Some("r1")))).unwrap(), ses("idle"), "{st}");
        }
        for st in [Claimed, Running, Stopping] {
            let e = ok(Some(run(st, Some("r1")))).unwrap_err();
            let want = Illegal::ActiveRun {
                session_id: "s1".into(),
                status: st,
            };
            assert!(matches!(&e, StoreError::Illegal(i) if *i == want), "{e}");
        }
        for other in [Some("r2"), None] {
            let e = ok(Some(run(Completed, other))).unwrap_err();
            assert!(
                matches!(&e, StoreError::LeaseConflict(Conflict::OtherRunner { session_id }) if session_id == "s1")
            );
        }
        let latest = run(Running, Some("r2"));
        let e = on_runner_status("s1", "r1", false, None, Some(&latest)).unwrap_err();
        assert!(
            matches!(e, StoreError::RunnerNotRegistered),
            "the runner is checked first"
        );
        let e = on_runner_status("s1", "r1", true, None, Some(&latest)).unwrap_err();
        assert!(
            matches!(e, StoreError::SessionNotFound(_)),
            "then the session"
        );
    }

    #[test]
    fn delete_only_when_quiet() {
        // (session status, held runs, deletable)
        let table = [
            ("pending", 0, true),
            ("finished", 0, true),
            ("failed", 0, true),
            ("stopped", 0, true),
            ("finished", 1, false),
            ("running", 0, false),
            ("idle", 0, false),
            ("stopping", 0, false),
        ];
        for (status, held, ok) in table {
            match check_delete("s1", Some((ses(status), held))) {
                Ok(()) => assert!(ok, "{status} {held}"),
                Err(e) => {
                    assert!(!ok, "{status} {held}");
                    let want = Busy::Active {
                        session_id: "s1".into(),
                        status: status.into(),
                    };
                    assert!(matches!(&e, StoreError::Busy(b) if *b == want), "{e}");
                }
            }
        }
        assert!(matches!(
            check_delete("s1", None),
            Err(StoreError::SessionNotFound(_))
        ));
        assert_eq!(
            deleted("s1", 3),
            serde_json::json!({"session_id": "s1", "runs_deleted": 3})
        );
    }

    #[test]
    fn pages_and_affinity() {
        let rows = |n: i64| (0..n).map(|i| (ses("idle"), 10 - i)).collect::<Vec<_>>();
        // One row more than the page was read: another page follows.
        let full = page(rows(4), 3);
        assert_eq!(full.sessions.len(), 3);
        let want = SessionCursor {
            created_at: "2027-01-15T08:00:00Z".into(),
            row: 8,
        };
        assert_eq!(
            full.next,
            Some(want),
            "more rows: the next starts after the page's last row"
        );
        assert_eq!(page(rows(3), 3).next, None, "exactly a page: the last one");
        let short = page(rows(2), 3);
        assert_eq!((short.sessions.len(), short.next), (2, None));
        assert_eq!(page(Vec::new(), 3).next, None);
        let a = affinity(ses("idle"));
        assert_eq!(
            (
                a.session_id.as_str(),
                a.hostname.as_deref(),
                a.project_dir.as_deref(),
                a.executor_profile
            ),
            ("s1", Some("h0"), Some("/old"), None)
        );
    }
}
