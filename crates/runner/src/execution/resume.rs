//! What a `resume_session` run reads from the coordinator before it starts: the
//! executor's own session id, or the session's events as the conversation.

use aof_executors::{Executor, Outcome};
use aof_wire::Run;

use crate::{
    active::RunControl,
    backoff::{retry, Attempt},
    Shared,
};

/// For a `resume_session` run, the executor's own session id recorded on the session
/// (bound by an earlier run), read from the coordinator so it survives a runner
/// restart. `None` for a new session or one never bound. `Err` is the run's outcome.
pub(super) async fn resume_id(
    shared: &Shared,
    run: &Run,
    control: &RunControl,
    executor_resumes: bool,
) -> Result<Option<String>, Outcome> {
    if run.run_type != aof_wire::RunType::ResumeSession || !executor_resumes {
        return Ok(None);
    }
    let token = run.session_token.as_deref();
    match retry("session", &control.interrupt, || {
        shared.client.session(&run.session_id, token)
    })
    .await
    {
        Attempt::Done(session) => {
            if session.executor_session_id.is_none() {
                tracing::warn!("resumed session has no executor session; starting a new one");
            }
            Ok(session.executor_session_id)
        }
        Attempt::Interrupted => Err(Outcome::Stopped),
        Attempt::Rejected(e) => Err(Outcome::Failed {
            error: format!("cannot read the session to resume it: {e}"),
        }),
    }
}

/// For a `resume_session` run on an executor that keeps no conversation of its own
/// (`wants_history`), the session's stored events: the coordinator's log is the
/// conversation, so any runner can continue it. `Err` is the run's outcome.
pub(super) async fn history(
    shared: &Shared,
    run: &Run,
    control: &RunControl,
    executor: &dyn Executor,
) -> Result<Option<Vec<aof_wire::StoredEvent>>, Outcome> {
    if run.run_type != aof_wire::RunType::ResumeSession || !executor.wants_history() {
        return Ok(None);
    }
    let token = run.session_token.as_deref();
    match retry("events", &control.interrupt, || {
        shared.client.events(&run.session_id, token)
    })
    .await
    {
        Attempt::Done(events) => Ok(Some(events)),
        Attempt::Interrupted => Err(Outcome::Stopped),
        Attempt::Rejected(e) => Err(Outcome::Failed {
            error: format!("cannot read the session's events to resume it: {e}"),
        }),
    }
}
