//! The store conformance suite: what every `Store` must do, written once and run by
//! each backend (`tests/conformance.rs` in aof-store-sqlite and aof-store-postgres).
//!
//! Each case is `pub async fn <area>_<what>(store: &dyn Store)` on a FRESH, empty store
//! and panics on the first difference. It uses only the public `Store` API and asserts
//! what a client would see: statuses, event types and texts, feed items, error variants.
//! Nothing waits for time to pass: a lease that must run out is granted already expired
//! (a negative ttl), a timeout is set in the past.
//!
//! `conformance_tests!(factory)` expands to one `#[tokio::test]` per case, in a module
//! `conformance`, so a test runner lists each case by name. `factory` is an async
//! function (or closure) returning `Option<Fixture>`: a fresh store, or `None` when the
//! backend is not available here (the test then passes as skipped). The calling crate
//! needs `tokio` (with `macros` and `rt`).
//!
//! Compiled only with the `conformance` feature (a dev-dependency feature of the backends).

use std::any::Any;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::*;
use aof_wire::{
    runner::{RegisterRequest, RunnerInfo},
    sse::FeedItem,
    Demands, Event, ExecutionMode, RunType, StoredEvent,
};

pub mod approvals;
pub mod audit;
pub mod auth;
pub mod callbacks;
pub mod events;
pub mod fencing;
pub mod import;
pub mod leases;
pub mod reports;
pub mod runners;
pub mod runs;
pub mod sessions;
pub mod stops;

/// A fresh store for one case, and whatever must outlive it (e.g. its temporary
/// directory). The store is dropped first.
pub struct Fixture {
    store: Box<dyn Store>,
    _keep: Box<dyn Any + Send>,
}

impl Fixture {
    pub fn new(store: impl Store) -> Fixture {
        Fixture {
            store: Box::new(store),
            _keep: Box::new(()),
        }
    }

    /// Keeps `guard` alive until the store is dropped.
    pub fn keeping(mut self, guard: impl Any + Send) -> Fixture {
        self._keep = Box::new(guard);
        self
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }
}

/// One `#[tokio::test]` per conformance case, in a module `conformance`; `$factory`
/// (an async fn or closure, `Option<Fixture>`) makes each case's fresh store.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_cases! { $factory;
            runs::runs_start_creates_the_run_and_a_pending_session,
            runs::runs_page_through_by_status_and_session,
            runs::runs_start_of_a_taken_session_is_session_exists,
            runs::runs_resume_of_a_missing_session_is_session_not_found,
            runs::runs_resume_adds_the_latest_run_of_the_session,
            runs::runs_get_latest_and_list_filter_by_status,
            runs::claim_takes_the_oldest_pending_run_with_a_new_lease,
            runs::claim_takes_only_runs_whose_demands_the_runner_meets,
            runs::claim_scoped_leaves_runs_outside_the_scope_pending,
            fencing::fencing_report_by_another_runner_is_lease_conflict,
            fencing::fencing_stale_lease_token_is_lease_conflict,
            fencing::fencing_unregistered_runner_is_runner_not_registered,
            fencing::fencing_tokenless_writer_is_accepted_only_from_the_holder,
            fencing::fencing_lease_of_another_sessions_run_writes_nothing,
            reports::report_started_marks_run_and_session_running,
            reports::report_completed_appends_run_completed_and_finishes_the_session,
            reports::report_completed_with_a_session_status_leaves_the_session_there,
            reports::report_completed_before_started_records_the_start,
            reports::report_failed_appends_run_failed_and_feeds_run_failed,
            reports::report_stopped_appends_run_stopped,
            reports::report_retried_terminal_report_returns_the_same_record_and_appends_nothing,
            reports::report_a_different_end_of_an_ended_run_is_illegal,
            reports::report_late_after_lease_expiry_is_refused,
            reports::report_tokenless_start_after_the_end_is_ignored,
            reports::release_requeue_returns_the_run_to_pending_for_attempt_two,
            reports::release_without_requeue_fails_with_the_handed_back_error,
            reports::release_of_a_stopping_run_stops_it,
            stops::stop_run_of_a_pending_run_cancels_it,
            stops::stop_run_of_a_running_run_is_delivered_to_its_runner_once,
            stops::stop_run_of_an_ended_or_missing_run_is_refused,
            stops::stop_session_of_an_ended_session_is_settled,
            stops::stop_session_without_any_run_marks_it_stopped,
            stops::stop_session_of_a_live_run_stops_the_run,
            stops::stop_session_of_an_idle_aof_runner_session_stops_at_once,
            stops::stop_session_of_an_idle_reference_runner_session_is_queued_then_abandoned,
            stops::stop_session_of_an_idle_reference_runner_session_is_confirmed_by_the_runner,
            leases::lease_heartbeat_renews_held_leases,
            leases::lease_heartbeat_with_a_wrong_token_lists_the_run_as_revoked,
            leases::lease_expiry_under_stale_recovery_requeues_claimed_and_fails_running,
            leases::lease_expiry_under_all_recovery_requeues_every_run,
            leases::lease_expiry_under_none_recovery_fails_every_run,
            leases::lease_expiry_of_a_stopping_run_stops_it,
            leases::lease_grace_extends_live_leases_and_redelivers_stops,
            leases::lease_fail_unmatched_fails_pending_runs_past_their_timeout,
            events::events_append_numbers_events_per_session,
            events::events_duplicate_idempotency_key_stores_nothing,
            events::events_lease_token_must_hold_the_named_run,
            events::events_list_after_and_limit,
            events::events_batch_is_all_or_nothing,
            events::events_batch_dedupes_keys_within_the_batch,
            events::feed_after_returns_strictly_increasing_cursors_in_commit_order,
            events::feed_subscribe_delivers_live_items_as_feed_after_lists_them,
            sessions::sessions_list_newest_first,
            sessions::sessions_page_through_without_duplicates_or_gaps,
            sessions::sessions_filter_by_status_agent_parent_and_text,
            sessions::sessions_bind_sets_executor_fields_and_running,
            sessions::sessions_patch_metadata_writes_only_given_fields,
            sessions::sessions_set_status_only_by_the_serving_runner,
            sessions::sessions_delete_counts_and_removes_runs_and_events,
            sessions::sessions_result_is_the_latest_result_event,
            sessions::sessions_counts_by_status,
            sessions::retention_purge_deletes_only_ended_sessions,
            runners::runners_register_and_list_with_staleness,
            runners::runners_page_through_and_filter_by_status_and_text,
            runners::runners_duplicate_registration_is_refused_unless_same_instance,
            runners::runners_remove_self_fails_held_runs,
            runners::runners_mark_for_deregistration_then_take_it,
            runners::runners_reap_removes_silent_runners_and_fails_their_runs,
            runners::runners_poll_state_tells_unknown_deregister_and_stops,
            auth::keys_create_find_list_revoke_twice_keeps_first_time,
            auth::keys_session_tokens_and_runner_bindings_round_trip,
            auth::keys_browser_sessions_create_find_delete,
            callbacks::callbacks_an_async_callback_childs_end_is_pending_for_its_parent,
            callbacks::callbacks_deliver_in_create_run_marks_them_delivered,
            callbacks::callbacks_busy_parent_or_delivered_callback_stores_nothing,
            audit::audit_append_list_filter_page_and_purge,
            import::import_stores_the_session_once,
            approvals::approvals_request_stores_row_event_and_waiting_session_once,
            approvals::approvals_request_needs_a_held_lease_of_a_running_run,
            approvals::approvals_decide_exactly_once_and_resume_the_session,
            approvals::approvals_close_applies_on_timeout_and_the_runs_end,
            approvals::approvals_list_filters_and_session_delete_removes_them,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($factory:expr; $($area:ident :: $case:ident),+ $(,)?) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(fixture) = ($factory)().await else {
                        return;
                    };
                    $crate::conformance::$area::$case(fixture.store()).await;
                }
            )+
        }
    };
}

// ---- Helpers shared by the cases ----

/// A lease long enough never to run out during a case.
pub(crate) fn ttl() -> Duration {
    Duration::minutes(10)
}

/// A lease that has run out when it is granted: expiry without waiting.
pub(crate) fn expired() -> Duration {
    Duration::milliseconds(-1)
}

/// A value as the wire spells it (`"running"`), whatever type holds it.
pub(crate) fn wire(v: &impl Serialize) -> String {
    match serde_json::to_value(v).expect("serializable") {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// A `start_session` run, synchronous, with no demands.
pub fn start(run_id: &str, session_id: &str) -> NewRun {
    NewRun {
        run_id: run_id.into(),
        run_type: RunType::StartSession,
        session_id: session_id.into(),
        agent_name: None,
        parameters: serde_json::json!({"prompt": "hi"}),
        project_dir: None,
        parent_session_id: None,
        execution_mode: ExecutionMode::Sync,
        demands: Demands::default(),
        scope: None,
        blueprint: None,
        timeout_at: None,
        deliver_callbacks: Vec::new(),
        traceparent: None,
    }
}

pub(crate) fn resume(run_id: &str, session_id: &str) -> NewRun {
    NewRun {
        run_type: RunType::ResumeSession,
        ..start(run_id, session_id)
    }
}

pub(crate) fn with_tags(mut new: NewRun, tags: &[&str]) -> NewRun {
    new.demands.tags = tags.iter().map(|t| t.to_string()).collect();
    new
}

pub(crate) fn register_request(id: &str, tags: &[&str]) -> RegisterRequest {
    RegisterRequest {
        hostname: format!("host-{id}"),
        project_dir: "/p".into(),
        executor_profile: "default".into(),
        executor: None,
        tags: Some(tags.iter().map(|t| t.to_string()).collect()),
        require_matching_tags: None,
        instance_id: Some(format!("i-{id}")),
    }
}

/// An AOF runner (registered with an `instance_id`).
pub(crate) async fn runner(store: &dyn Store, id: &str) -> RunnerInfo {
    store
        .register_runner(id, &register_request(id, &[]))
        .await
        .unwrap()
}

/// An AOF reference runner: no `instance_id`, keeps a process between turns.
pub(crate) async fn reference_runner(store: &dyn Store, id: &str) -> RunnerInfo {
    let req = RegisterRequest {
        instance_id: None,
        ..register_request(id, &[])
    };
    store.register_runner(id, &req).await.unwrap()
}

/// Claims the oldest pending run this runner takes; there must be one.
pub(crate) async fn claim(store: &dyn Store, runner: &RunnerInfo, ttl: Duration) -> RunRecord {
    store
        .claim_run(runner, ttl)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{} found no run to claim", runner.runner_id))
}

/// The writer holding `rec`'s lease (its runner, its token).
pub(crate) fn holder(rec: &RunRecord) -> Writer {
    Writer {
        runner_id: rec.run.runner_id.clone().expect("claimed"),
        lease_token: rec.lease_token.clone(),
    }
}

/// Reports `report` as the holder of `rec`; it must be accepted.
pub(crate) async fn report(store: &dyn Store, rec: &RunRecord, report: RunReport) -> RunRecord {
    store
        .report(&rec.run.run_id, &holder(rec), report)
        .await
        .unwrap()
}

/// Creates `start(run_id, session_id)`, has `runner` claim it and report it started.
pub(crate) async fn running(
    store: &dyn Store,
    runner: &RunnerInfo,
    run_id: &str,
    session_id: &str,
) -> RunRecord {
    store.create_run(start(run_id, session_id)).await.unwrap();
    let rec = claim(store, runner, ttl()).await;
    assert_eq!(rec.run.run_id, run_id, "claimed the run just created");
    report(store, &rec, RunReport::Started).await;
    rec
}

pub(crate) fn completed() -> RunReport {
    RunReport::Completed {
        session_status: None,
    }
}

pub(crate) async fn run(store: &dyn Store, run_id: &str) -> RunRecord {
    store
        .get_run(run_id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("run {run_id} missing"))
}

pub(crate) async fn run_status(store: &dyn Store, run_id: &str) -> String {
    wire(&run(store, run_id).await.status)
}

pub(crate) async fn session_status(store: &dyn Store, session_id: &str) -> String {
    let s = store.get_session(session_id).await.unwrap();
    wire(
        &s.unwrap_or_else(|| panic!("session {session_id} missing"))
            .status,
    )
}

pub(crate) async fn events(store: &dyn Store, session_id: &str) -> Vec<StoredEvent> {
    store.list_events(session_id, None, None).await.unwrap()
}

pub(crate) async fn event_types(store: &dyn Store, session_id: &str) -> Vec<String> {
    let list = events(store, session_id).await;
    list.into_iter().map(|e| e.event.event_type).collect()
}

/// Every feed item (of one session, or all).
pub(crate) async fn feed(store: &dyn Store, session_id: Option<&str>) -> Vec<FeedItem> {
    store.feed_after(0, session_id, 100_000).await.unwrap()
}

pub(crate) async fn feed_kinds(store: &dyn Store, session_id: &str) -> Vec<String> {
    let items = feed(store, Some(session_id)).await;
    items.into_iter().map(|i| i.kind).collect()
}

pub(crate) fn data(item: &FeedItem) -> serde_json::Value {
    serde_json::from_str(&item.data).expect("feed data is JSON")
}

/// A message event write, optionally keyed.
pub(crate) fn message(session_id: &str, text: &str, key: Option<&str>) -> EventWrite {
    EventWrite {
        event: Event::message(session_id, "assistant", text),
        run_id: None,
        idempotency_key: key.map(str::to_string),
        lease_token: None,
    }
}

pub(crate) fn texts(events: &[StoredEvent]) -> Vec<String> {
    events.iter().filter_map(|e| e.event.text()).collect()
}

/// What a refused write must leave as it was: the session's events and row, the run's
/// status, lease and error, and the feed's head.
#[derive(Debug, PartialEq)]
pub(crate) struct Snapshot {
    events: Vec<StoredEvent>,
    session: Option<aof_wire::Session>,
    run: Option<RunView>,
    feed_head: i64,
}

#[derive(Debug, PartialEq)]
struct RunView {
    status: String,
    lease_token: Option<String>,
    runner_id: Option<String>,
    error: Option<String>,
}

pub(crate) async fn snapshot(store: &dyn Store, session_id: &str, run_id: &str) -> Snapshot {
    let run = store.get_run(run_id).await.unwrap().map(|r| RunView {
        status: wire(&r.status),
        lease_token: r.lease_token,
        runner_id: r.run.runner_id,
        error: r.run.error,
    });
    Snapshot {
        events: events(store, session_id).await,
        session: store.get_session(session_id).await.unwrap(),
        run,
        feed_head: store.feed_head().await.unwrap(),
    }
}

/// The error of a call that must fail.
pub(crate) fn refused<T: std::fmt::Debug>(r: StoreResult<T>) -> StoreError {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    }
}

/// A time the stores keep exactly (they store milliseconds).
pub(crate) fn at_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("valid time")
}

pub(crate) fn now_ms() -> DateTime<Utc> {
    at_ms(Utc::now().timestamp_millis())
}
