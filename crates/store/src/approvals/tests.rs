//! The approval rules, table-tested without a database.

use aof_core::{RunStatus, SessionStatus};
use aof_wire::approval::{ApprovalStatus, Decision, Resolution};
use chrono::{Duration, TimeZone, Utc};

use super::*;
use crate::{events::tests::run, lifecycle::Step, StoreError, Writer};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 15, 8, 0, 0).unwrap()
}

fn new() -> NewApproval {
    NewApproval {
        approval_id: "apr_1".into(),
        session_id: "ses_1".into(),
        run_id: "run_1".into(),
        tool_name: "Bash".into(),
        tool_input: serde_json::json!({"command": "rm -rf /tmp/x"})
            .as_object()
            .cloned()
            .unwrap(),
        request_key: Some("toolu_1".into()),
        timeout: Duration::seconds(900),
        on_timeout: Decision::Deny,
        created_at: now(),
    }
}

fn runner(token: Option<&str>) -> Writer {
    Writer {
        runner_id: "r1".into(),
        lease_token: token.map(str::to_string),
    }
}

fn verdict(decision: Decision) -> Verdict {
    Verdict {
        decision,
        resolution: Resolution::Reviewer,
        decided_by: Some("key:op".into()),
        message: Some("looks fine".into()),
        updated_input: None,
        at: now() + Duration::seconds(5),
    }
}

#[test]
fn asking_writes_row_event_then_session() {
    let rec = run("ses_1", RunStatus::Running, Some("tok"));
    let (a, plan) = on_request(new(), Some(&runner(Some("tok"))), Some(&rec), None).unwrap();
    assert_eq!(a.status, ApprovalStatus::Pending);
    assert_eq!(a.expires_at, "2027-01-15T08:15:00.000000+00:00");
    assert!(
        matches!(&plan.steps[0], Step::Approval(w) if matches!(**w, ApprovalWrite::Insert { .. }))
    );
    match &plan.steps[1] {
        Step::Event { event, .. } => {
            assert_eq!(event.event_type, "approval_requested");
            assert_eq!(event.tool_name.as_deref(), Some("Bash"));
            assert_eq!(event.result_data.as_ref().unwrap()["approval_id"], "apr_1");
        }
        s => panic!("{s:?}"),
    }
    assert_eq!(
        plan.steps[2],
        Step::Session {
            session_id: "ses_1".into(),
            status: SessionStatus::WaitingApproval
        }
    );
    // The coordinator (MCP tool, session token) asks without a writer.
    assert!(on_request(new(), None, Some(&rec), None).is_ok());
}

#[test]
fn asking_is_refused_off_the_lease_and_repeats_answer_the_first() {
    let running = run("ses_1", RunStatus::Running, Some("tok"));
    for (who, rec) in [
        (Some(runner(Some("stale"))), running.clone()),
        (
            Some(Writer {
                runner_id: "r2".into(),
                lease_token: None,
            }),
            running.clone(),
        ),
        (None, run("ses_1", RunStatus::Claimed, Some("tok"))),
        (None, run("ses_1", RunStatus::Completed, Some("tok"))),
        (None, run("ses_1", RunStatus::Stopping, Some("tok"))),
    ] {
        let e = on_request(new(), who.as_ref(), Some(&rec), None).unwrap_err();
        assert!(matches!(e, StoreError::LeaseConflict(_)), "{e:?}");
    }
    // Another session's run is no run of this session.
    let other = run("ses_2", RunStatus::Running, Some("tok"));
    let e = on_request(new(), None, Some(&other), None).unwrap_err();
    assert!(matches!(e, StoreError::RunNotFound), "{e:?}");
    // A repeat (same key) answers the stored one and writes nothing, even off-lease.
    let (first, _) = on_request(new(), None, Some(&running), None).unwrap();
    let ended = run("ses_1", RunStatus::Completed, Some("tok"));
    let (again, plan) = on_request(new(), None, Some(&ended), Some(first.clone())).unwrap();
    assert_eq!(again, first);
    assert!(plan.steps.is_empty());
}

#[test]
fn deciding_once_and_only_once() {
    let rec = run("ses_1", RunStatus::Running, Some("tok"));
    let (a, _) = on_request(new(), None, Some(&rec), None).unwrap();
    let mut v = verdict(Decision::Approve);
    v.updated_input = serde_json::json!({"command": "ls"}).as_object().cloned();
    let (done, plan) =
        on_decide(Some(a.clone()), v, Some(SessionStatus::WaitingApproval), 0).unwrap();
    assert_eq!(done.status, ApprovalStatus::Approved);
    assert_eq!(done.decided_by.as_deref(), Some("key:op"));
    assert_eq!(done.updated_input.as_ref().unwrap()["command"], "ls");
    assert_eq!(plan.steps.len(), 3, "row, event, session back to running");
    assert_eq!(
        plan.steps[2],
        Step::Session {
            session_id: "ses_1".into(),
            status: SessionStatus::Running
        }
    );
    let e = on_decide(Some(done), verdict(Decision::Deny), None, 0).unwrap_err();
    assert!(matches!(
        e,
        StoreError::ApprovalDecided {
            status: ApprovalStatus::Approved,
            ..
        }
    ));
    let e = on_decide(None, verdict(Decision::Deny), None, 0).unwrap_err();
    assert!(matches!(e, StoreError::ApprovalNotFound));
    // Another approval still pending, or the session no longer waiting: status stays.
    for (session, others) in [
        (Some(SessionStatus::WaitingApproval), 1),
        (Some(SessionStatus::Stopping), 0),
        (Some(SessionStatus::Finished), 0),
    ] {
        let (_, plan) =
            on_decide(Some(a.clone()), verdict(Decision::Deny), session, others).unwrap();
        assert_eq!(plan.steps.len(), 2, "{session:?} {others}");
    }
    // A denial never carries an edited input.
    let mut v = verdict(Decision::Deny);
    v.updated_input = serde_json::json!({"x": 1}).as_object().cloned();
    let (denied, _) = on_decide(Some(a), v, None, 0).unwrap();
    assert_eq!(denied.updated_input, None);
    assert_eq!(denied.status, ApprovalStatus::Denied);
}

#[test]
fn closing_times_out_or_ends_with_the_run() {
    let rec = run("ses_1", RunStatus::Running, Some("tok"));
    let (a, _) = on_request(new(), None, Some(&rec), None).unwrap();
    let deadline = (now() + Duration::seconds(900)).timestamp_millis();
    let before = now() + Duration::seconds(899);
    let after = now() + Duration::seconds(900);
    assert_eq!(
        closing(&a, deadline, Some(RunStatus::Running), before),
        None
    );
    let v = closing(&a, deadline, Some(RunStatus::Running), after).unwrap();
    assert_eq!(
        (v.decision, v.resolution, v.decided_by),
        (Decision::Deny, Resolution::Timeout, None)
    );
    for st in [
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Stopped,
        RunStatus::Pending,
    ] {
        let v = closing(&a, deadline, Some(st), before).unwrap();
        assert_eq!(
            (v.decision, v.resolution),
            (Decision::Deny, Resolution::RunEnded),
            "{st}"
        );
    }
    assert!(closing(&a, deadline, None, before).is_some());
    // on_timeout: approve is honoured by the timeout.
    let mut lenient = a.clone();
    lenient.on_timeout = Decision::Approve;
    let v = closing(&lenient, deadline, Some(RunStatus::Running), after).unwrap();
    assert_eq!(v.decision, Decision::Approve);
}
