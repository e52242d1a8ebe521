//! The lifecycle's rules as tables, without a database.

use aof_core::{RecoveryMode, RunStatus, SessionStatus};
use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::{stops::IDLE_STOP_OWED, LeasePolicy, RunRecord, RunReport, StoreError, Writer};

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0).unwrap()
}

fn rec(status: RunStatus) -> RunRecord {
    let held = status != RunStatus::Pending;
    let mut r = crate::events::tests::run("ses_1", status, held.then_some("tok"));
    if !held {
        r.run.runner_id = None;
    }
    r
}

fn ours() -> Writer {
    Writer {
        runner_id: "r1".into(),
        lease_token: Some("tok".into()),
    }
}

fn reference() -> Writer {
    Writer {
        runner_id: "r1".into(),
        lease_token: None,
    }
}

/// A plan in short: "run:FROM>TO", "event:TYPE", "session:STATUS", "parent", "run_failed",
/// "delivered:N"; the write kinds are checked separately.
fn shape(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .map(|s| match s {
            Step::Run { from, to, .. } => format!("run:{from}>{to}"),
            Step::Event { event, .. } => format!("event:{}", event.event_type),
            Step::Session { status, .. } => format!("session:{status}"),
            Step::Parent { .. } => "parent".into(),
            Step::RunFailed { .. } => "run_failed".into(),
            Step::StopDelivered { value, .. } => format!("delivered:{value}"),
            Step::Approval(_) => "approval".into(),
        })
        .collect()
}

fn write_of(plan: &Plan) -> &RunWrite {
    plan.steps
        .iter()
        .find_map(|s| match s {
            Step::Run { write, .. } => Some(write),
            _ => None,
        })
        .expect("the plan changes the run")
}

fn report(status: RunStatus, who: &Writer, r: RunReport) -> StoreResult<Option<Plan>> {
    on_report(&rec(status), who, &r, t0())
}

#[test]
fn each_report_causes_its_writes_in_order() {
    let completed = RunReport::Completed {
        session_status: None,
    };
    let idle = RunReport::Completed {
        session_status: Some(SessionStatus::Idle),
    };
    let failed = RunReport::Failed {
        error: "boom".into(),
    };
    let stopped = RunReport::Stopped {
        signal: "SIGTERM".into(),
    };
    let cases: Vec<(RunStatus, RunReport, Vec<&str>)> = vec![
        (
            RunStatus::Claimed,
            RunReport::Started,
            vec!["run:claimed>running", "event:run_start", "session:running"],
        ),
        // A repeated start of a running run changes its row only (no second run_start).
        (
            RunStatus::Running,
            RunReport::Started,
            vec!["run:running>running"],
        ),
        (
            RunStatus::Running,
            completed.clone(),
            vec![
                "run:running>completed",
                "event:run_completed",
                "session:finished",
            ],
        ),
        (
            RunStatus::Running,
            idle,
            vec![
                "run:running>completed",
                "event:run_completed",
                "session:idle",
            ],
        ),
        // Ended before its start was reported: the history gets the start first.
        (
            RunStatus::Claimed,
            completed,
            vec![
                "event:run_start",
                "run:claimed>completed",
                "event:run_completed",
                "session:finished",
            ],
        ),
        (
            RunStatus::Running,
            failed,
            vec![
                "run:running>failed",
                "event:run_failed",
                "run_failed",
                "session:failed",
            ],
        ),
        (
            RunStatus::Stopping,
            stopped,
            vec![
                "run:stopping>stopped",
                "event:run_stopped",
                "session:stopped",
            ],
        ),
        (
            RunStatus::Running,
            RunReport::Released { requeue: true },
            vec!["run:running>pending", "session:pending"],
        ),
        (
            RunStatus::Running,
            RunReport::Released { requeue: false },
            vec![
                "run:running>failed",
                "event:run_failed",
                "run_failed",
                "session:failed",
            ],
        ),
        (
            RunStatus::Stopping,
            RunReport::Released { requeue: true },
            vec![
                "run:stopping>stopped",
                "event:run_stopped",
                "session:stopped",
            ],
        ),
    ];
    for (from, r, want) in cases {
        let plan = report(from, &ours(), r.clone())
            .unwrap_or_else(|e| panic!("{from} on {r:?}: {e}"))
            .unwrap_or_else(|| panic!("{from} on {r:?}: no plan"));
        assert_eq!(shape(&plan), want, "{from} on {r:?}");
    }
}

#[test]
fn the_run_row_write_says_what_each_report_keeps() {
    let plan = |from, r| report(from, &ours(), r).unwrap().unwrap();
    assert_eq!(
        write_of(&plan(RunStatus::Claimed, RunReport::Started)),
        &RunWrite::Start
    );
    // The runner's own end keeps the token (a retried report matches it).
    assert_eq!(
        write_of(&plan(
            RunStatus::Running,
            RunReport::Failed { error: "x".into() }
        )),
        &RunWrite::Finish {
            error: Some("x".into()),
            revoke: false
        }
    );
    // A release resolves the run for good: the token goes.
    let released = plan(RunStatus::Running, RunReport::Released { requeue: false });
    match write_of(&released) {
        RunWrite::Finish {
            error: Some(e),
            revoke: true,
        } => assert!(
            e.contains("runner r1") && e.contains("RUN_RECOVERY_MODE=none"),
            "{e}"
        ),
        w => panic!("{w:?}"),
    }
    assert_eq!(
        write_of(&plan(
            RunStatus::Running,
            RunReport::Released { requeue: true }
        )),
        &RunWrite::Requeue
    );
}

#[test]
fn events_carry_what_the_runner_said() {
    let plan = report(
        RunStatus::Running,
        &ours(),
        RunReport::Failed {
            error: "exit 3".into(),
        },
    )
    .unwrap()
    .unwrap();
    let ev = plan
        .steps
        .iter()
        .find_map(|s| match s {
            Step::Event { event, run_id } => Some((event, run_id)),
            _ => None,
        })
        .unwrap();
    assert_eq!(ev.1, "run_1");
    assert_eq!(ev.0.session_id, "ses_1");
    assert_eq!(ev.0.error.as_deref(), Some("exit 3"));
    assert_eq!(ev.0.reason.as_deref(), Some("failed"));
    assert!(plan.steps.contains(&Step::RunFailed {
        session_id: "ses_1".into(),
        run_id: "run_1".into(),
        error: "exit 3".into()
    }));
    let done = report(
        RunStatus::Running,
        &ours(),
        RunReport::Completed {
            session_status: None,
        },
    )
    .unwrap()
    .unwrap();
    let ev = done
        .steps
        .iter()
        .find_map(|s| match s {
            Step::Event { event, .. } if event.event_type == "run_completed" => Some(event),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (ev.exit_code, ev.reason.as_deref()),
        (Some(0), Some("completed"))
    );
}

#[test]
fn a_child_start_records_its_parent() {
    let mut r = rec(RunStatus::Claimed);
    r.run.parent_session_id = Some("ses_parent".into());
    let plan = on_report(&r, &ours(), &RunReport::Started, t0())
        .unwrap()
        .unwrap();
    assert!(plan.steps.contains(&Step::Parent {
        session_id: "ses_1".into(),
        parent: "ses_parent".into()
    }));
}

#[test]
fn fencing_refuses_other_runners_and_stale_tokens() {
    let other = Writer {
        runner_id: "r2".into(),
        lease_token: Some("tok".into()),
    };
    let stale = Writer {
        runner_id: "r1".into(),
        lease_token: Some("old".into()),
    };
    for who in [&other, &stale] {
        let e = report(RunStatus::Running, who, RunReport::Started).unwrap_err();
        assert!(matches!(e, StoreError::LeaseConflict(_)), "{e:?}");
    }
    assert!(report(RunStatus::Running, &other, RunReport::Started)
        .unwrap_err()
        .to_string()
        .contains("not held by runner r2"));
    assert!(report(RunStatus::Running, &stale, RunReport::Started)
        .unwrap_err()
        .to_string()
        .contains("is stale"));
    // Resolved without the runner (token revoked): its late word is refused.
    let mut expired = rec(RunStatus::Failed);
    expired.lease_token = None;
    let e = on_report(&expired, &reference(), &RunReport::Started, t0()).unwrap_err();
    assert!(e.to_string().contains("the lease is no longer held"), "{e}");
}

#[test]
fn retries_and_old_news_change_nothing() {
    // The same terminal report again: answered unchanged.
    let again = report(
        RunStatus::Completed,
        &ours(),
        RunReport::Completed {
            session_status: None,
        },
    );
    assert_eq!(again.unwrap(), None);
    // A reference runner's start after its fast turn ended: old news.
    let late = report(RunStatus::Completed, &reference(), RunReport::Started);
    assert_eq!(late.unwrap(), None);
    // Our runner's start after the end it reported itself: illegal.
    let e = report(RunStatus::Completed, &ours(), RunReport::Started).unwrap_err();
    assert!(matches!(e, StoreError::Illegal(_)), "{e:?}");
    // A different end after an end: illegal, not a repeat.
    let e = report(
        RunStatus::Completed,
        &ours(),
        RunReport::Failed { error: "x".into() },
    )
    .unwrap_err();
    assert!(matches!(e, StoreError::Illegal(_)), "{e:?}");
}

#[test]
fn a_report_looks_the_runner_up_unless_it_holds_the_live_run() {
    let live = rec(RunStatus::Running);
    assert!(!must_check_runner(Some(&live), &ours()));
    let other = Writer {
        runner_id: "r2".into(),
        lease_token: None,
    };
    assert!(must_check_runner(Some(&live), &other));
    assert!(must_check_runner(Some(&rec(RunStatus::Completed)), &ours()));
    assert!(must_check_runner(None, &ours()));
}

#[test]
fn expiry_follows_the_recovery_policy() {
    let policy = |recovery| LeasePolicy {
        ttl: chrono::Duration::seconds(30),
        recovery,
    };
    let cases = [
        (
            RunStatus::Claimed,
            RecoveryMode::Stale,
            vec!["run:claimed>pending", "session:pending"],
        ),
        (
            RunStatus::Running,
            RecoveryMode::Stale,
            vec!["run:running>failed", "session:failed", "run_failed"],
        ),
        (
            RunStatus::Running,
            RecoveryMode::All,
            vec!["run:running>pending", "session:pending"],
        ),
        (
            RunStatus::Claimed,
            RecoveryMode::None,
            vec!["run:claimed>failed", "session:failed", "run_failed"],
        ),
        (
            RunStatus::Stopping,
            RecoveryMode::None,
            vec!["run:stopping>stopped", "session:stopped"],
        ),
    ];
    for (from, mode, want) in cases {
        let (plan, resolved) = on_lease_expired(&rec(from), &policy(mode), t0()).unwrap();
        assert_eq!(shape(&plan), want, "{from} under {mode:?}");
        assert_eq!((resolved.from, resolved.run_id.as_str()), (from, "run_1"));
        if let RunWrite::Finish { error, revoke } = write_of(&plan) {
            assert!(revoke, "an expired lease is revoked");
            if resolved.to == RunStatus::Failed {
                assert_eq!(error.as_deref(), Some(LEASE_EXPIRED));
            }
        }
    }
}

#[test]
fn sweeps_fail_with_their_reason() {
    let (plan, r) = on_unmatched(&rec(RunStatus::Pending), t0()).unwrap();
    assert_eq!(r.to, RunStatus::Failed);
    assert_eq!(
        write_of(&plan),
        &RunWrite::Finish {
            error: Some(NO_MATCH.into()),
            revoke: false
        }
    );
    let (plan, r) = on_runner_removed(&rec(RunStatus::Running), "Runner removed", t0()).unwrap();
    assert_eq!(r.to, RunStatus::Failed);
    assert_eq!(
        shape(&plan),
        vec!["run:running>failed", "session:failed", "run_failed"]
    );
    assert!(on_unmatched(&rec(RunStatus::Running), t0()).is_err());
}

#[test]
fn a_claim_takes_a_pending_run_with_a_fresh_lease() {
    let a = on_claim("run_1", "r1", chrono::Duration::seconds(30), t0()).unwrap();
    let b = on_claim("run_1", "r1", chrono::Duration::seconds(30), t0()).unwrap();
    assert_eq!(shape(&a), vec!["run:pending>claimed"]);
    match (write_of(&a), write_of(&b)) {
        (
            RunWrite::Claim {
                runner_id,
                lease_token: ta,
                lease_expires_at,
            },
            RunWrite::Claim {
                lease_token: tb, ..
            },
        ) => {
            assert_eq!(runner_id, "r1");
            assert_ne!(ta, tb, "every claim gets its own token");
            assert_eq!(*lease_expires_at, t0() + chrono::Duration::seconds(30));
        }
        w => panic!("{w:?}"),
    }
}

#[test]
fn stopping_a_run() {
    let (plan, out) = on_stop_run(&rec(RunStatus::Pending), t0()).unwrap();
    assert_eq!(shape(&plan), vec!["run:pending>stopped", "session:stopped"]);
    assert_eq!(write_of(&plan), &RunWrite::Cancel);
    assert_eq!(
        (out.status.as_str(), out.message.as_deref()),
        ("stopped", Some("Run cancelled before execution"))
    );
    let (plan, out) = on_stop_run(&rec(RunStatus::Running), t0()).unwrap();
    assert_eq!(
        shape(&plan),
        vec!["run:running>stopping", "session:stopping"]
    );
    assert_eq!(write_of(&plan), &RunWrite::AskStop);
    assert_eq!(out.status, "stopping");
    let (plan, out) = on_stop_run(&rec(RunStatus::Stopping), t0()).unwrap();
    assert!(plan.steps.is_empty());
    assert_eq!(out.status, "stopping");
    let e = on_stop_run(&rec(RunStatus::Completed), t0()).unwrap_err();
    assert!(e
        .to_string()
        .contains("cannot be stopped (status: completed)"));
}

fn view(session: &str, latest: Option<RunStatus>, delivered: i64) -> SessionStopView {
    SessionStopView {
        session_id: "ses_1".into(),
        session_status: session.parse().unwrap(),
        latest: latest.map(rec),
        latest_stop_delivered: delivered,
        runner: None,
        now: t0(),
        stale_after: chrono::Duration::seconds(120),
    }
}

fn presence(instance: bool, silent_s: i64) -> Option<RunnerPresence> {
    Some(RunnerPresence {
        last_heartbeat: t0() - chrono::Duration::seconds(silent_s),
        has_instance_id: instance,
        deregister: false,
    })
}

#[test]
fn stopping_a_session() {
    let stop = |v: &SessionStopView| {
        let (plan, out) = on_stop_session(v).unwrap();
        (shape(&plan), out.status, out.message.unwrap_or_default())
    };
    // A live run: the run's stop.
    let (steps, status, _) = stop(&view("running", Some(RunStatus::Running), 0));
    assert_eq!(steps, vec!["run:running>stopping", "session:stopping"]);
    assert_eq!(status, "stopping");
    // Settled by the session's own status: nothing written.
    for s in ["stopped", "finished", "failed"] {
        let (steps, status, msg) = stop(&view(s, Some(RunStatus::Completed), 0));
        assert!(steps.is_empty());
        assert_eq!((status.as_str(), msg), (s, format!("Session already {s}")));
    }
    // No run at all: marked stopped.
    let (steps, status, msg) = stop(&view("pending", None, 0));
    assert_eq!(
        (steps, status.as_str()),
        (vec!["session:stopped".to_string()], "stopped")
    );
    assert!(msg.starts_with("No active run found"));
    // Idle, and its runner an AOF runner (instance id) or stale: stopped at once.
    for runner in [presence(true, 1), presence(false, 500), None] {
        let mut v = view("idle", Some(RunStatus::Completed), 1);
        v.runner = runner;
        let (steps, status, _) = stop(&v);
        assert_eq!(steps, vec!["session:stopped"], "{runner:?}");
        assert_eq!(status, "stopped");
    }
    // Idle on a live reference runner: queued for it.
    let mut v = view("idle", Some(RunStatus::Completed), 1);
    v.runner = presence(false, 1);
    let (steps, status, msg) = stop(&v);
    assert_eq!(
        steps,
        vec![
            format!("delivered:{IDLE_STOP_OWED}"),
            "session:stopping".into()
        ]
    );
    assert_eq!(
        (status.as_str(), msg.as_str()),
        ("stopping", "Stop command queued for idle session")
    );
    // Asked again while still owed to a live reference runner: still waiting for it.
    let mut v = view("stopping", Some(RunStatus::Completed), IDLE_STOP_OWED);
    v.runner = presence(false, 1);
    let (steps, status, _) = stop(&v);
    assert!(steps.is_empty());
    assert_eq!(status, "stopping");
    // Asked again once delivered (or the runner went away): abandoned, stopped here.
    for (delivered, runner) in [(1, presence(false, 1)), (IDLE_STOP_OWED, None)] {
        let mut v = view("stopping", Some(RunStatus::Completed), delivered);
        v.runner = runner;
        let (steps, status, msg) = stop(&v);
        assert_eq!(steps, vec!["delivered:1", "session:stopped"]);
        assert_eq!(status, "stopped");
        assert!(msg.starts_with("No runner confirmed the stop"), "{msg}");
    }
}

#[test]
fn a_session_stop_loads_the_runner_of_an_ended_run_only() {
    let ended = rec(RunStatus::Completed);
    assert_eq!(SessionStopView::runner_to_load(Some(&ended)), Some("r1"));
    let live = rec(RunStatus::Running);
    assert_eq!(SessionStopView::runner_to_load(Some(&live)), None);
    // Never claimed, so no runner to look at.
    let cancelled = RunRecord {
        status: RunStatus::Stopped,
        ..rec(RunStatus::Pending)
    };
    assert_eq!(SessionStopView::runner_to_load(Some(&cancelled)), None);
    assert_eq!(SessionStopView::runner_to_load(None), None);
}

#[test]
fn the_run_failed_feed_item_names_the_run_its_session_and_the_error() {
    assert_eq!(
        run_failed_data("ses_1", "run_1", "boom"),
        serde_json::json!({"run_id": "run_1", "error": "boom", "session_id": "ses_1"})
    );
}
