//! Runner registry: register (with the duplicate rule), list, deregister, reap.

use chrono::{Duration, Utc};
use sqlx::{postgres::PgRow, Row};

use aof_store::{stops::IDLE_STOP_OWED, Resolved, StoreError, StoreResult};
use aof_wire::runner::{RegisterRequest, RunnerInfo};

use crate::{internal, ms, rows::ts, PgStore};

const COLS: &str =
    "runner_id, instance_id, registered_at, last_heartbeat, last_heartbeat_ms, hostname, \
    project_dir, executor_profile, executor, tags, require_matching_tags";

fn info_from_row(r: &PgRow, stale_after: Duration) -> StoreResult<RunnerInfo> {
    let hb_ms: i64 = r.get("last_heartbeat_ms");
    let age = (Utc::now().timestamp_millis() - hb_ms).max(0) as f64 / 1000.0;
    let executor: String = r.get("executor");
    let tags: String = r.get("tags");
    Ok(RunnerInfo {
        runner_id: r.get("runner_id"),
        registered_at: r.get("registered_at"),
        last_heartbeat: r.get("last_heartbeat"),
        hostname: r.get("hostname"),
        project_dir: r.get("project_dir"),
        executor_profile: r.get("executor_profile"),
        executor: serde_json::from_str(&executor).map_err(internal)?,
        tags: serde_json::from_str(&tags).map_err(internal)?,
        require_matching_tags: r.get::<i64, _>("require_matching_tags") != 0,
        status: if age >= stale_after.num_milliseconds() as f64 / 1000.0 {
            "stale".into()
        } else {
            "online".into()
        },
        seconds_since_heartbeat: age,
    })
}

impl PgStore {
    pub(crate) async fn poll_state_impl(&self, id: &str) -> StoreResult<aof_store::PollState> {
        let row = sqlx::query(&format!(
            "SELECT {COLS}, deregister, (EXISTS(SELECT 1 FROM runs r WHERE r.runner_id = runners.runner_id \
             AND r.status = 'stopping' AND r.stop_delivered = 0) \
             OR EXISTS(SELECT 1 FROM runs r WHERE r.runner_id = runners.runner_id \
             AND r.stop_delivered = {IDLE_STOP_OWED})) AS has_stops \
             FROM runners WHERE runner_id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(internal)?;
        let Some(row) = row else {
            return Ok(aof_store::PollState::Unknown);
        };
        if row.get::<i64, _>("deregister") != 0 {
            return Ok(aof_store::PollState::Deregister);
        }
        Ok(aof_store::PollState::Ready {
            runner: Box::new(info_from_row(&row, self.opts.stale_after)?),
            has_stops: row.get::<bool, _>("has_stops"),
        })
    }

    pub(crate) async fn runner_exists_impl(&self, id: &str) -> StoreResult<bool> {
        let n: Option<i64> =
            sqlx::query_scalar("SELECT 1::bigint FROM runners WHERE runner_id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(internal)?;
        Ok(n.is_some())
    }

    pub(crate) async fn register_impl(
        &self,
        id: &str,
        req: &RegisterRequest,
    ) -> StoreResult<RunnerInfo> {
        let now = Utc::now();
        let mut w = self.begin().await?;
        let existing =
            sqlx::query("SELECT instance_id, last_heartbeat_ms FROM runners WHERE runner_id = $1")
                .bind(id)
                .fetch_optional(&mut *w.tx)
                .await
                .map_err(internal)?;
        let executor =
            serde_json::to_string(&req.executor.clone().unwrap_or_default()).map_err(internal)?;
        let tags =
            serde_json::to_string(&req.tags.clone().unwrap_or_default()).map_err(internal)?;
        let require = req.require_matching_tags.unwrap_or(false) as i64;
        match existing {
            Some(row) => {
                let instance: Option<String> = row.get("instance_id");
                let hb: i64 = row.get("last_heartbeat_ms");
                let online = ms(now) - hb < self.opts.stale_after.num_milliseconds();
                let same_instance = instance.is_some() && instance == req.instance_id;
                if online && !same_instance {
                    return Err(StoreError::DuplicateRunner(id.to_string()));
                }
                sqlx::query(
                    "UPDATE runners SET instance_id = $1, last_heartbeat = $2, last_heartbeat_ms = $3, \
                     executor = $4, tags = $5, require_matching_tags = $6, deregister = 0 WHERE runner_id = $7",
                )
                .bind(&req.instance_id)
                .bind(ts(now))
                .bind(ms(now))
                .bind(executor)
                .bind(tags)
                .bind(require)
                .bind(id)
                .execute(&mut *w.tx)
                .await
                .map_err(internal)?;
            }
            None => {
                sqlx::query(&format!(
                    "INSERT INTO runners({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ))
                .bind(id)
                .bind(&req.instance_id)
                .bind(ts(now))
                .bind(ts(now))
                .bind(ms(now))
                .bind(&req.hostname)
                .bind(&req.project_dir)
                .bind(&req.executor_profile)
                .bind(executor)
                .bind(tags)
                .bind(require)
                .execute(&mut *w.tx)
                .await
                .map_err(internal)?;
            }
        }
        let row = sqlx::query(&format!("SELECT {COLS} FROM runners WHERE runner_id = $1"))
            .bind(id)
            .fetch_one(&mut *w.tx)
            .await
            .map_err(internal)?;
        let info = info_from_row(&row, self.opts.stale_after)?;
        w.commit().await?;
        Ok(info)
    }

    pub(crate) async fn list_runners_impl(
        &self,
        stale_after: Duration,
    ) -> StoreResult<Vec<RunnerInfo>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM runners ORDER BY registered_at"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(internal)?;
        rows.iter().map(|r| info_from_row(r, stale_after)).collect()
    }

    pub(crate) async fn remove_runner_impl(&self, id: &str, self_: bool) -> StoreResult<()> {
        let mut w = self.begin().await?;
        if self_ {
            let n = sqlx::query("DELETE FROM runners WHERE runner_id = $1")
                .bind(id)
                .execute(&mut *w.tx)
                .await
                .map_err(internal)?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::RunnerNotFound);
            }
            self.fail_runs_of(&mut w, id, "Runner deregistered during execution")
                .await?;
        } else {
            let n = sqlx::query("UPDATE runners SET deregister = 1 WHERE runner_id = $1")
                .bind(id)
                .execute(&mut *w.tx)
                .await
                .map_err(internal)?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::RunnerNotFound);
            }
        }
        w.commit().await
    }

    pub(crate) async fn take_deregistration_impl(&self, id: &str) -> StoreResult<bool> {
        let marked: Option<i64> =
            sqlx::query_scalar("SELECT deregister FROM runners WHERE runner_id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(internal)?;
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
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT runner_id FROM runners WHERE last_heartbeat_ms < $1")
                .bind(cutoff)
                .fetch_all(&self.pool)
                .await
                .map_err(internal)?;
        let mut out = Vec::new();
        for id in ids {
            let mut w = self.begin().await?;
            let gone =
                sqlx::query("DELETE FROM runners WHERE runner_id = $1 AND last_heartbeat_ms < $2")
                    .bind(&id)
                    .bind(cutoff)
                    .execute(&mut *w.tx)
                    .await
                    .map_err(internal)?
                    .rows_affected();
            if gone == 0 {
                continue; // it heartbeated in the meantime
            }
            out.extend(
                self.fail_runs_of(&mut w, &id, "Runner disconnected during execution")
                    .await?,
            );
            w.commit().await?;
        }
        Ok(out)
    }
}
