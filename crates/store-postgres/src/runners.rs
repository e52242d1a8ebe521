//! `RunnerStore` on PostgreSQL: the SQL of the runner registry (register, poll state,
//! list, deregister, reap). The rules are `aof_store::runners`.

use async_trait::async_trait;
use chrono::{Duration, Utc};
use sqlx::Row;

use aof_store::{
    rows::{self, RUNNER_COLS as COLS},
    runners::{self, RunnerRow, DEREGISTERED, DISCONNECTED},
    statements::{self, OnConflict},
    PollState, Resolved, RunnerCursor, RunnerFilter, RunnerPage, RunnerStore, StoreResult,
};
use aof_wire::runner::{RegisterRequest, RunnerInfo};

use crate::{
    internal, ms,
    rows::{bind_all, mark},
    PgStore, WriteTx,
};

impl PgStore {
    /// Runs `query`, a DELETE of runner `id`, fails the runs it held with `error` and
    /// commits. `None`: no row matched, nothing changed.
    async fn delete(
        &self,
        mut w: WriteTx<'_>,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
        id: &str,
        error: &str,
    ) -> StoreResult<Option<Vec<Resolved>>> {
        let n = query.execute(&mut *w.tx).await.map_err(internal)?;
        if n.rows_affected() == 0 {
            return Ok(None);
        }
        let failed = self.fail_runs_of(&mut w, id, error).await?;
        w.commit().await?;
        Ok(Some(failed))
    }
}

/// Writes runner row `r`: a new row unless the id is taken meanwhile (`first`; 0 rows
/// then), else over the row this transaction locked.
async fn upsert(w: &mut WriteTx<'_>, r: &RunnerRow, first: bool) -> StoreResult<u64> {
    let conflict = match first {
        true => OnConflict::Nothing,
        false => OnConflict::Update,
    };
    let (sql, vals) = statements::runner_upsert(r, conflict, mark);
    let q = bind_all(sqlx::query(&sql), vals);
    let done = q.execute(&mut *w.tx).await.map_err(internal)?;
    Ok(done.rows_affected())
}

#[async_trait]
impl RunnerStore for PgStore {
    async fn poll_state(&self, id: &str) -> StoreResult<PollState> {
        let row = sqlx::query(&statements::runner_poll(mark))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(internal)?;
        let row = row.map(|r| StoreResult::Ok((rows::runner(&r)?, r.get("has_stops"))));
        let row = row.transpose()?;
        runners::poll_state(row, Utc::now(), self.opts.stale_after)
    }

    async fn register_runner(&self, id: &str, req: &RegisterRequest) -> StoreResult<RunnerInfo> {
        let (now, stale_after) = (Utc::now(), self.opts.stale_after);
        // Twice at most: a first registration that loses the insert race to another
        // coordinator decides again on the row that won.
        for _ in 0..2 {
            let mut w = self.begin().await?;
            let existing = sqlx::query(&format!(
                "SELECT {COLS} FROM runners WHERE runner_id = $1 FOR UPDATE"
            ))
            .bind(id)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(internal)?;
            let existing = existing.as_ref().map(rows::runner).transpose()?;
            let first = existing.is_none();
            let r = runners::on_register(id, existing, req, now, stale_after)?;
            if upsert(&mut w, &r, first).await? == 0 {
                continue;
            }
            w.commit().await?;
            return r.info(now, stale_after);
        }
        Err(internal(anyhow::anyhow!(
            "runner {id}: registration lost two insert races"
        )))
    }

    async fn list_runners(&self, stale_after: Duration) -> StoreResult<Vec<RunnerInfo>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM runners ORDER BY registered_at, runner_id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(internal)?;
        let now = Utc::now();
        rows.iter()
            .map(|r| rows::runner(r)?.info(now, stale_after))
            .collect()
    }

    async fn list_runners_page(
        &self,
        stale_after: Duration,
        filter: &RunnerFilter,
        after: Option<RunnerCursor>,
        limit: i64,
    ) -> StoreResult<RunnerPage> {
        let now = Utc::now();
        let since = runners::online_since_ms(now, stale_after);
        let (sql, vals) = statements::runners_page(filter, after.as_ref(), since, limit, mark);
        let rows = bind_all(sqlx::query(&sql), vals)
            .fetch_all(&self.pool)
            .await
            .map_err(internal)?;
        let rows = rows.iter().map(rows::runner).collect::<StoreResult<_>>()?;
        runners::page(rows, limit, now, stale_after)
    }

    async fn remove_runner(&self, id: &str, self_: bool) -> StoreResult<()> {
        let mut w = self.begin().await?;
        if self_ {
            let query = sqlx::query("DELETE FROM runners WHERE runner_id = $1").bind(id);
            return runners::removed(self.delete(w, query, id, DEREGISTERED).await?.is_some());
        }
        let marked = sqlx::query("UPDATE runners SET deregister = 1 WHERE runner_id = $1")
            .bind(id)
            .execute(&mut *w.tx)
            .await
            .map_err(internal)?;
        runners::removed(marked.rows_affected() > 0)?;
        w.commit().await
    }

    async fn take_deregistration(&self, id: &str) -> StoreResult<bool> {
        let w = self.begin().await?;
        let sql = "DELETE FROM runners WHERE runner_id = $1 AND deregister = 1";
        let query = sqlx::query(sql).bind(id);
        Ok(self.delete(w, query, id, DEREGISTERED).await?.is_some())
    }

    async fn reap_runners(&self, remove_after: Duration) -> StoreResult<Vec<Resolved>> {
        let cutoff = ms(Utc::now() - remove_after);
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT runner_id FROM runners WHERE last_heartbeat_ms < $1")
                .bind(cutoff)
                .fetch_all(&self.pool)
                .await
                .map_err(internal)?;
        let mut out = Vec::new();
        for id in ids {
            // A runner that heartbeated in the meantime stays.
            let sql = "DELETE FROM runners WHERE runner_id = $1 AND last_heartbeat_ms < $2";
            let query = sqlx::query(sql).bind(&id).bind(cutoff);
            let w = self.begin().await?;
            out.extend(
                self.delete(w, query, &id, DISCONNECTED)
                    .await?
                    .unwrap_or_default(),
            );
        }
        Ok(out)
    }
}
