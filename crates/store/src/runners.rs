//! The runner registry's rules, written once for every backend: a runner's row and how
//! it reads on the wire (online or stale by its heartbeat's age), who may register
//! under a taken id, what a poll learns, and the errors of removal. A backend loads the
//! row in its transaction, calls these, and writes the row they return.

use aof_wire::runner::{RegisterRequest, RunnerInfo};
use chrono::{DateTime, Duration, Utc};

use crate::{PollState, RunnerCursor, RunnerPage, StoreError, StoreResult};

/// The runs of a runner removed at its own request fail with this.
pub const DEREGISTERED: &str = "Runner deregistered during execution";
/// The runs of a runner reaped for silence fail with this.
pub const DISCONNECTED: &str = "Runner disconnected during execution";

pub use aof_wire::RunnerStatus;

/// A `runners` row as both backends store it (the JSON columns as their text).
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerRow {
    pub runner_id: String,
    /// Our runner's process instance (`None`: a reference runner).
    pub instance_id: Option<String>,
    pub registered_at: String,
    pub last_heartbeat: String,
    pub last_heartbeat_ms: i64,
    pub hostname: String,
    pub project_dir: String,
    pub executor_profile: String,
    /// JSON object: the runner's executor settings.
    pub executor: String,
    /// JSON array of strings.
    pub tags: String,
    pub require_matching_tags: bool,
    /// Marked for deregistration: told so, and removed, at its next poll.
    pub deregister: bool,
}

/// Milliseconds since the heartbeat; 0 for one from the future (another coordinator's
/// clock).
fn age_ms(last_heartbeat_ms: i64, now: DateTime<Utc>) -> i64 {
    (now.timestamp_millis() - last_heartbeat_ms).max(0)
}

/// A runner is online while its last heartbeat is younger than `stale_after`.
pub fn is_online(last_heartbeat_ms: i64, now: DateTime<Utc>, stale_after: Duration) -> bool {
    age_ms(last_heartbeat_ms, now) < stale_after.num_milliseconds()
}

/// The heartbeat instant after which a runner is online at `now` (the page filter's
/// bound, the same rule as [`is_online`]).
pub fn online_since_ms(now: DateTime<Utc>, stale_after: Duration) -> i64 {
    now.timestamp_millis() - stale_after.num_milliseconds()
}

/// A page from `limit + 1` rows read: `limit` of them, and the cursor after the last
/// one when the extra row says another page follows.
pub fn page(
    mut rows: Vec<RunnerRow>,
    limit: i64,
    now: DateTime<Utc>,
    stale_after: Duration,
) -> StoreResult<RunnerPage> {
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = match more {
        true => rows.last().map(|r| RunnerCursor {
            registered_at: r.registered_at.clone(),
            runner_id: r.runner_id.clone(),
        }),
        false => None,
    };
    let runners = rows
        .iter()
        .map(|r| r.info(now, stale_after))
        .collect::<StoreResult<_>>()?;
    Ok(RunnerPage { runners, next })
}

fn bad_column(col: &str, e: serde_json::Error) -> StoreError {
    StoreError::Internal(anyhow::anyhow!("runners.{col}: {e}"))
}

impl RunnerRow {
    /// The runner as the API shows it at `now`.
    pub fn info(&self, now: DateTime<Utc>, stale_after: Duration) -> StoreResult<RunnerInfo> {
        let online = is_online(self.last_heartbeat_ms, now, stale_after);
        Ok(RunnerInfo {
            runner_id: self.runner_id.clone(),
            registered_at: self.registered_at.clone(),
            last_heartbeat: self.last_heartbeat.clone(),
            hostname: self.hostname.clone(),
            project_dir: self.project_dir.clone(),
            executor_profile: self.executor_profile.clone(),
            executor: serde_json::from_str(&self.executor)
                .map_err(|e| bad_column("executor", e))?,
            tags: serde_json::from_str(&self.tags).map_err(|e| bad_column("tags", e))?,
            require_matching_tags: self.require_matching_tags,
            status: if online {
                RunnerStatus::Online
            } else {
                RunnerStatus::Stale
            },
            seconds_since_heartbeat: age_ms(self.last_heartbeat_ms, now) as f64 / 1000.0,
        })
    }
}

/// Registration of `runner_id` at `now`; `existing` is its row, if any. An online runner
/// keeps its id against anyone but itself (the same `instance_id`: our runner restarted
/// after a crash); a stale one is replaced. A re-registration keeps the row's
/// registration time and placement, takes the request's instance, executor and tags,
/// and clears a deregistration mark. Returns the row to write.
pub fn on_register(
    runner_id: &str,
    existing: Option<RunnerRow>,
    req: &RegisterRequest,
    now: DateTime<Utc>,
    stale_after: Duration,
) -> StoreResult<RunnerRow> {
    let encode = |v: serde_json::Result<String>| v.map_err(|e| StoreError::Internal(e.into()));
    let executor = encode(serde_json::to_string(
        &req.executor.clone().unwrap_or_default(),
    ))?;
    let tags = encode(serde_json::to_string(&req.tags.clone().unwrap_or_default()))?;
    let stamp = aof_wire::format_ts(now);
    let base = match existing {
        Some(row) => {
            let same_instance = row.instance_id.is_some() && row.instance_id == req.instance_id;
            if is_online(row.last_heartbeat_ms, now, stale_after) && !same_instance {
                return Err(StoreError::DuplicateRunner(runner_id.to_string()));
            }
            row
        }
        None => RunnerRow {
            runner_id: runner_id.to_string(),
            instance_id: None,
            registered_at: stamp.clone(),
            last_heartbeat: String::new(),
            last_heartbeat_ms: 0,
            hostname: req.hostname.clone(),
            project_dir: req.project_dir.clone(),
            executor_profile: req.executor_profile.clone(),
            executor: String::new(),
            tags: String::new(),
            require_matching_tags: false,
            deregister: false,
        },
    };
    Ok(RunnerRow {
        instance_id: req.instance_id.clone(),
        last_heartbeat: stamp,
        last_heartbeat_ms: now.timestamp_millis(),
        executor,
        tags,
        require_matching_tags: req.require_matching_tags.unwrap_or(false),
        deregister: false,
        ..base
    })
}

/// What a long-poll learns about its runner from its row and whether stops await it:
/// unknown (register again), deregistered, or ready.
pub fn poll_state(
    row: Option<(RunnerRow, bool)>,
    now: DateTime<Utc>,
    stale_after: Duration,
) -> StoreResult<PollState> {
    Ok(match row {
        None => PollState::Unknown,
        Some((r, _)) if r.deregister => PollState::Deregister,
        Some((r, has_stops)) => PollState::Ready {
            runner: Box::new(r.info(now, stale_after)?),
            has_stops,
        },
    })
}

/// The answer to a removal (now or at the next poll) that `found` the runner or not.
pub fn removed(found: bool) -> StoreResult<()> {
    match found {
        true => Ok(()),
        false => Err(StoreError::RunnerNotFound),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000, 0).unwrap()
    }

    fn req(instance: Option<&str>) -> RegisterRequest {
        RegisterRequest {
            hostname: "h2".into(),
            project_dir: "/p2".into(),
            executor_profile: "x2".into(),
            executor: Some(serde_json::from_str(r#"{"kind":"echo"}"#).unwrap()),
            tags: Some(vec!["gpu".into()]),
            require_matching_tags: Some(true),
            instance_id: instance.map(str::to_string),
        }
    }

    /// A row registered at t0 - 1 h by instance `i1`, last heard `silent_ms` before t0.
    fn row(silent_ms: i64, instance: Option<&str>) -> RunnerRow {
        RunnerRow {
            runner_id: "r1".into(),
            instance_id: instance.map(str::to_string),
            registered_at: "2027-01-15T07:00:00Z".into(),
            last_heartbeat: "2027-01-15T07:59:00Z".into(),
            last_heartbeat_ms: t0().timestamp_millis() - silent_ms,
            hostname: "h1".into(),
            project_dir: "/p1".into(),
            executor_profile: "x1".into(),
            executor: "{}".into(),
            tags: "[]".into(),
            require_matching_tags: false,
            deregister: true,
        }
    }

    #[test]
    fn status_by_heartbeat_age() {
        let stale_after = Duration::seconds(120);
        // (silent for ms, status, seconds_since_heartbeat)
        let table = [
            (0, RunnerStatus::Online, 0.0),
            (119_999, RunnerStatus::Online, 119.999),
            (120_000, RunnerStatus::Stale, 120.0),
            (600_000, RunnerStatus::Stale, 600.0),
            (-5_000, RunnerStatus::Online, 0.0), // another coordinator's clock runs ahead
        ];
        for (silent, status, age) in table {
            let info = row(silent, None).info(t0(), stale_after).unwrap();
            assert_eq!(info.status, status, "silent {silent} ms");
            assert_eq!(info.seconds_since_heartbeat, age, "silent {silent} ms");
            assert_eq!(
                is_online(t0().timestamp_millis() - silent, t0(), stale_after),
                status == RunnerStatus::Online
            );
        }
    }

    #[test]
    fn info_decodes_json_columns_and_refuses_bad_ones() {
        let mut r = row(0, None);
        r.executor = r#"{"kind":"command"}"#.into();
        r.tags = r#"["a","b"]"#.into();
        let info = r.info(t0(), Duration::seconds(120)).unwrap();
        assert_eq!(info.executor["kind"], "command");
        assert_eq!(info.tags, vec!["a", "b"]);
        assert_eq!(
            (info.hostname.as_str(), info.registered_at.as_str()),
            ("h1", "2027-01-15T07:00:00Z")
        );
        r.tags = "not json".into();
        let err = r.info(t0(), Duration::seconds(120)).unwrap_err();
        assert!(
            matches!(&err, StoreError::Internal(e) if e.to_string().starts_with("runners.tags:")),
            "{err}"
        );
    }

    #[test]
    fn registration_under_a_taken_id() {
        let stale_after = Duration::seconds(120);
        // (existing row: silent ms and instance, request's instance, accepted?)
        let table = [
            (1_000, Some("i1"), Some("i2"), false), // online, another instance
            (1_000, None, None, false),             // online reference runner: no instance to match
            (1_000, Some("i1"), None, false),
            (1_000, Some("i1"), Some("i1"), true), // the same instance, restarted
            (120_000, Some("i1"), Some("i2"), true), // stale: replaced by anyone
            (120_000, None, None, true),
        ];
        for (silent, had, asks, ok) in table {
            let got = on_register("r1", Some(row(silent, had)), &req(asks), t0(), stale_after);
            match got {
                Ok(r) => {
                    assert!(ok, "{silent} {had:?} {asks:?} accepted");
                    // Registration time and placement stay; the rest is the request's.
                    assert_eq!(r.registered_at, "2027-01-15T07:00:00Z");
                    assert_eq!((r.hostname.as_str(), r.project_dir.as_str()), ("h1", "/p1"));
                    assert_eq!(r.executor_profile, "x1");
                    assert_eq!(r.instance_id.as_deref(), asks);
                    assert_eq!(r.last_heartbeat_ms, t0().timestamp_millis());
                    assert_eq!(r.last_heartbeat, aof_wire::format_ts(t0()));
                    assert_eq!(
                        (r.executor.as_str(), r.tags.as_str()),
                        (r#"{"kind":"echo"}"#, r#"["gpu"]"#)
                    );
                    assert!(r.require_matching_tags);
                    assert!(!r.deregister, "a new registration clears the mark");
                }
                Err(e) => {
                    assert!(!ok, "{silent} {had:?} {asks:?} refused");
                    assert!(
                        matches!(&e, StoreError::DuplicateRunner(id) if id == "r1"),
                        "{e}"
                    );
                }
            }
        }
    }

    #[test]
    fn first_registration() {
        let mut bare = req(None);
        (bare.executor, bare.tags, bare.require_matching_tags) = (None, None, None);
        let r = on_register("r9", None, &bare, t0(), Duration::seconds(120)).unwrap();
        let stamp = aof_wire::format_ts(t0());
        assert_eq!(r.runner_id, "r9");
        assert_eq!(
            (r.registered_at.as_str(), r.last_heartbeat.as_str()),
            (stamp.as_str(), stamp.as_str())
        );
        assert_eq!(
            (
                r.hostname.as_str(),
                r.project_dir.as_str(),
                r.executor_profile.as_str()
            ),
            ("h2", "/p2", "x2")
        );
        assert_eq!((r.executor.as_str(), r.tags.as_str()), ("{}", "[]"));
        assert!(!r.require_matching_tags && !r.deregister);
        let info = r.info(t0(), Duration::seconds(120)).unwrap();
        assert_eq!(
            (info.status, info.seconds_since_heartbeat),
            (RunnerStatus::Online, 0.0)
        );
    }

    #[test]
    fn poll_states() {
        let stale_after = Duration::seconds(120);
        assert!(matches!(
            poll_state(None, t0(), stale_after),
            Ok(PollState::Unknown)
        ));
        assert!(matches!(
            poll_state(Some((row(0, None), true)), t0(), stale_after),
            Ok(PollState::Deregister)
        ));
        let ready = RunnerRow {
            deregister: false,
            ..row(130_000, None)
        };
        match poll_state(Some((ready, true)), t0(), stale_after).unwrap() {
            PollState::Ready { runner, has_stops } => {
                assert!(has_stops);
                assert_eq!(
                    (runner.runner_id.as_str(), runner.status),
                    ("r1", RunnerStatus::Stale)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(removed(false), Err(StoreError::RunnerNotFound)));
        assert!(removed(true).is_ok());
    }
}
