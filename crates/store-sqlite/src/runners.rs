//! Runner registry: register (with the duplicate rule), list, deregister, reap.

use chrono::{Duration, Utc};
use rusqlite::{OptionalExtension, Row};

use aof_store::{stops::IDLE_STOP_OWED, Resolved, StoreError, StoreResult};
use aof_wire::runner::{RegisterRequest, RunnerInfo};

use crate::{
    internal, ms,
    rows::{bad_column, ts},
    SqliteStore,
};

const COLS: &str =
    "runner_id, instance_id, registered_at, last_heartbeat, last_heartbeat_ms, hostname, \
    project_dir, executor_profile, executor, tags, require_matching_tags";

fn info_from_row(r: &Row, stale_after: Duration) -> rusqlite::Result<RunnerInfo> {
    let hb_ms: i64 = r.get("last_heartbeat_ms")?;
    let age = (Utc::now().timestamp_millis() - hb_ms).max(0) as f64 / 1000.0;
    let executor: String = r.get("executor")?;
    let tags: String = r.get("tags")?;
    Ok(RunnerInfo {
        runner_id: r.get("runner_id")?,
        registered_at: r.get("registered_at")?,
        last_heartbeat: r.get("last_heartbeat")?,
        hostname: r.get("hostname")?,
        project_dir: r.get("project_dir")?,
        executor_profile: r.get("executor_profile")?,
        executor: serde_json::from_str(&executor).map_err(|e| bad_column("executor", e))?,
        tags: serde_json::from_str(&tags).map_err(|e| bad_column("tags", e))?,
        require_matching_tags: r.get::<_, i64>("require_matching_tags")? != 0,
        status: if age >= stale_after.num_milliseconds() as f64 / 1000.0 {
            "stale".into()
        } else {
            "online".into()
        },
        seconds_since_heartbeat: age,
    })
}

impl SqliteStore {
    pub(crate) async fn poll_state_impl(&self, id: &str) -> StoreResult<aof_store::PollState> {
        let (id, stale_after) = (id.to_string(), self.opts.stale_after);
        let state = self
            .read_hot(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {COLS}, deregister, EXISTS(SELECT 1 FROM runs r WHERE r.runner_id = runners.runner_id \
                     AND r.status = 'stopping' AND r.stop_delivered = 0) \
                     OR EXISTS(SELECT 1 FROM runs r WHERE r.runner_id = runners.runner_id \
                     AND r.stop_delivered = {IDLE_STOP_OWED}) AS has_stops \
                     FROM runners WHERE runner_id = ?"
                ))
                .and_then(|mut st| {
                    st.query_row([id], |row| {
                        if row.get::<_, i64>("deregister")? != 0 {
                            return Ok(aof_store::PollState::Deregister);
                        }
                        Ok(aof_store::PollState::Ready {
                            runner: Box::new(info_from_row(row, stale_after)?),
                            has_stops: row.get::<_, i64>("has_stops")? != 0,
                        })
                    })
                    .optional()
                })
                .map_err(internal)
            })
            .await?;
        Ok(state.unwrap_or(aof_store::PollState::Unknown))
    }

    pub(crate) async fn runner_exists_impl(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.read(move |c| {
            c.prepare_cached("SELECT 1 FROM runners WHERE runner_id = ?")
                .and_then(|mut st| st.exists([id]))
                .map_err(internal)
        })
        .await
    }

    pub(crate) async fn register_impl(
        &self,
        id: &str,
        req: &RegisterRequest,
    ) -> StoreResult<RunnerInfo> {
        let now = Utc::now();
        let (id, req, stale_after) = (id.to_string(), req.clone(), self.opts.stale_after);
        self.write(move |w| {
            let id = id.as_str();
            let existing: Option<(Option<String>, i64)> = w
                .prepare_cached(
                    "SELECT instance_id, last_heartbeat_ms FROM runners WHERE runner_id = ?",
                )
                .and_then(|mut st| {
                    st.query_row([id], |r| {
                        Ok((r.get("instance_id")?, r.get("last_heartbeat_ms")?))
                    })
                    .optional()
                })
                .map_err(internal)?;
            let executor = serde_json::to_string(&req.executor.clone().unwrap_or_default())
                .map_err(internal)?;
            let tags =
                serde_json::to_string(&req.tags.clone().unwrap_or_default()).map_err(internal)?;
            let require = req.require_matching_tags.unwrap_or(false) as i64;
            match existing {
                Some((instance, hb)) => {
                    let online = ms(now) - hb < stale_after.num_milliseconds();
                    let same_instance = instance.is_some() && instance == req.instance_id;
                    if online && !same_instance {
                        return Err(StoreError::DuplicateRunner(id.to_string()));
                    }
                    w.prepare_cached(
                        "UPDATE runners SET instance_id = ?, last_heartbeat = ?, last_heartbeat_ms = ?, \
                         executor = ?, tags = ?, require_matching_tags = ?, deregister = 0 WHERE runner_id = ?",
                    )
                    .and_then(|mut st| {
                        st.execute((
                            &req.instance_id,
                            ts(now),
                            ms(now),
                            executor,
                            tags,
                            require,
                            id,
                        ))
                    })
                    .map_err(internal)?;
                }
                None => {
                    w.prepare_cached(&format!(
                        "INSERT INTO runners({COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    ))
                    .and_then(|mut st| {
                        st.execute(rusqlite::params![
                            id,
                            &req.instance_id,
                            ts(now),
                            ts(now),
                            ms(now),
                            &req.hostname,
                            &req.project_dir,
                            &req.executor_profile,
                            executor,
                            tags,
                            require,
                        ])
                    })
                    .map_err(internal)?;
                }
            }
            w.prepare_cached(&format!("SELECT {COLS} FROM runners WHERE runner_id = ?"))
                .and_then(|mut st| st.query_row([id], |r| info_from_row(r, stale_after)))
                .map_err(internal)
        })
        .await
    }

    pub(crate) async fn list_runners_impl(
        &self,
        stale_after: Duration,
    ) -> StoreResult<Vec<RunnerInfo>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLS} FROM runners ORDER BY registered_at"
            ))
            .and_then(|mut st| {
                st.query_map([], |r| info_from_row(r, stale_after))?
                    .collect()
            })
            .map_err(internal)
        })
        .await
    }

    pub(crate) async fn remove_runner_impl(&self, id: &str, self_: bool) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |w| {
            let id = id.as_str();
            if self_ {
                let n = w
                    .prepare_cached("DELETE FROM runners WHERE runner_id = ?")
                    .and_then(|mut st| st.execute([id]))
                    .map_err(internal)?;
                if n == 0 {
                    return Err(StoreError::RunnerNotFound);
                }
                crate::leases::fail_runs_of(w, id, "Runner deregistered during execution")?;
            } else {
                let n = w
                    .prepare_cached("UPDATE runners SET deregister = 1 WHERE runner_id = ?")
                    .and_then(|mut st| st.execute([id]))
                    .map_err(internal)?;
                if n == 0 {
                    return Err(StoreError::RunnerNotFound);
                }
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn take_deregistration_impl(&self, id: &str) -> StoreResult<bool> {
        let rid = id.to_string();
        let marked: Option<i64> = self
            .read(move |c| {
                c.prepare_cached("SELECT deregister FROM runners WHERE runner_id = ?")
                    .and_then(|mut st| st.query_row([rid], |r| r.get(0)).optional())
                    .map_err(internal)
            })
            .await?;
        if marked != Some(1) {
            return Ok(false);
        }
        self.remove_runner_impl(id, true).await?;
        Ok(true)
    }

    pub(crate) async fn reap_runners_impl(
        &self,
        remove_after: Duration,
    ) -> StoreResult<Vec<Resolved>> {
        let cutoff = ms(Utc::now() - remove_after);
        let ids: Vec<String> = self
            .read(move |c| {
                c.prepare_cached("SELECT runner_id FROM runners WHERE last_heartbeat_ms < ?")
                    .and_then(|mut st| st.query_map([cutoff], |r| r.get(0))?.collect())
                    .map_err(internal)
            })
            .await?;
        let mut out = Vec::new();
        for id in ids {
            let failed = self
                .write(move |w| {
                    let gone = w
                        .prepare_cached(
                            "DELETE FROM runners WHERE runner_id = ? AND last_heartbeat_ms < ?",
                        )
                        .and_then(|mut st| st.execute((&id, cutoff)))
                        .map_err(internal)?;
                    if gone == 0 {
                        return Ok(Vec::new()); // it heartbeated in the meantime
                    }
                    crate::leases::fail_runs_of(w, &id, "Runner disconnected during execution")
                })
                .await?;
            out.extend(failed);
        }
        Ok(out)
    }
}
