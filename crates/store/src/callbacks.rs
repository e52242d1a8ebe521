//! `async_callback` rules, written once for every backend: which ends of a child
//! session owe its parent a callback and when a parent may be handed its callbacks (a
//! stored one reads back in `rows::callback`). A child's callback is recorded in the
//! transaction that ends it; it is marked delivered in the transaction that creates its
//! parent's resume run.

use aof_core::SessionStatus;
use aof_wire::Session;

use crate::{Busy, StoreError, StoreResult};

/// The parent that session `s` moving to `status` owes a callback, if any: the session
/// ended its turn (finished, idle, failed or stopped) and has a parent other than
/// itself. The backend then records one callback for the session's latest run if that
/// run asked for `async_callback`; a second end of the same run records nothing.
pub fn owed_to(s: &Session, status: SessionStatus) -> Option<&str> {
    let ended = matches!(
        status,
        SessionStatus::Finished
            | SessionStatus::Idle
            | SessionStatus::Failed
            | SessionStatus::Stopped
    );
    let parent = s.parent_session_id.as_deref()?;
    (ended && parent != s.session_id).then_some(parent)
}

/// Callbacks are handed only to an idle parent: `live_run` is one of its runs still
/// pending, claimed, running or stopping, if any.
pub fn check_deliverable(session_id: &str, live_run: Option<&str>) -> StoreResult<()> {
    match live_run {
        None => Ok(()),
        Some(live) => Err(StoreError::Busy(Busy::RunInFlight {
            session_id: session_id.to_string(),
            run_id: live.to_string(),
        })),
    }
}

/// Marking callback `id` delivered touched `rows` rows: anything but one means it was
/// delivered already (or is not `session_id`'s), and the resume run is refused.
pub fn check_marked(id: i64, session_id: &str, rows: u64) -> StoreResult<()> {
    match rows {
        1 => Ok(()),
        _ => Err(StoreError::Busy(Busy::Delivered {
            id,
            session_id: session_id.to_string(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(parent: Option<&str>) -> Session {
        Session {
            session_id: "child".into(),
            status: SessionStatus::Running,
            created_at: "2027-01-15T08:00:00Z".into(),
            project_dir: None,
            agent_name: None,
            last_resumed_at: None,
            parent_session_id: parent.map(str::to_string),
            executor_session_id: None,
            executor_profile: None,
            hostname: None,
        }
    }

    #[test]
    fn which_ends_owe_the_parent() {
        use SessionStatus::*;
        for status in SessionStatus::ALL {
            let owed = matches!(status, Finished | Idle | Failed | Stopped);
            let want = owed.then_some("parent");
            assert_eq!(owed_to(&child(Some("parent")), status), want, "{status}");
            assert_eq!(owed_to(&child(None), status), None, "{status}: no parent");
            assert_eq!(
                owed_to(&child(Some("child")), status),
                None,
                "{status}: its own parent"
            );
        }
    }

    #[test]
    fn delivery_refusals() {
        assert!(check_deliverable("p", None).is_ok());
        let busy = check_deliverable("p", Some("run_7")).unwrap_err();
        assert!(matches!(&busy, StoreError::Busy(_)));
        assert_eq!(
            busy.to_string(),
            "Session 'p' has run run_7 in flight; callbacks wait until it ends"
        );
        assert!(check_marked(3, "p", 1).is_ok());
        for rows in [0, 2] {
            let e = check_marked(3, "p", rows).unwrap_err();
            assert!(matches!(&e, StoreError::Busy(_)));
            assert_eq!(
                e.to_string(),
                "callback 3 for session 'p' was delivered already"
            );
        }
    }
}
