//! `RunnerStore` on SQLite: the SQL of the runner registry (register, poll state, list,
//! deregister, reap). The rules are `aof_store::runners`.

use async_trait::async_trait;
use chrono::{Duration, Utc};
use rusqlite::{OptionalExtension, Params, Row};

use aof_store::{
    rows::{self, RUNNER_COLS as COLS},
    runners::{self, RunnerRow, DEREGISTERED, DISCONNECTED},
    statements::{self, OnConflict},
    PollState, Resolved, RunnerCursor, RunnerFilter, RunnerPage, RunnerStore, StoreResult,
};
use aof_wire::runner::{RegisterRequest, RunnerInfo};

use crate::{
    internal, ms,
    rows::{mark, values},
    SqliteStore, Tx,
};

fn runner_row(r: &Row) -> rusqlite::Result<RunnerRow> {
    rows::runner(r)
}

/// Runs `sql`, a DELETE of runner `id`, and fails the runs it held with `error`.
/// `None`: no row matched, nothing else changed.
fn delete(
    w: &mut Tx<'_>,
    sql: &str,
    p: impl Params,
    id: &str,
    error: &str,
) -> StoreResult<Option<Vec<Resolved>>> {
    let n = w
        .prepare_cached(sql)
        .and_then(|mut st| st.execute(p))
        .map_err(internal)?;
    match n {
        0 => Ok(None),
        _ => crate::leases::fail_runs_of(w, id, error).map(Some),
    }
}

#[async_trait]
impl RunnerStore for SqliteStore {
    async fn poll_state(&self, id: &str) -> StoreResult<PollState> {
        let id = id.to_string();
        let row = self
            .read_hot(move |c| {
                c.prepare_cached(&statements::runner_poll(mark))
                    .and_then(|mut st| {
                        st.query_row([id], |r| Ok((runner_row(r)?, r.get("has_stops")?)))
                            .optional()
                    })
                    .map_err(internal)
            })
            .await?;
        runners::poll_state(row, Utc::now(), self.opts.stale_after)
    }

    async fn register_runner(&self, id: &str, req: &RegisterRequest) -> StoreResult<RunnerInfo> {
        let (id, req, stale_after) = (id.to_string(), req.clone(), self.opts.stale_after);
        self.write(move |w| {
            let now = Utc::now();
            let existing = w
                .prepare_cached(&format!("SELECT {COLS} FROM runners WHERE runner_id = ?"))
                .and_then(|mut st| st.query_row([&id], runner_row).optional())
                .map_err(internal)?;
            let r = runners::on_register(&id, existing, &req, now, stale_after)?;
            let (sql, vals) = statements::runner_upsert(&r, OnConflict::Update, mark);
            w.prepare_cached(&sql)
                .and_then(|mut st| st.execute(values(vals)))
                .map_err(internal)?;
            r.info(now, stale_after)
        })
        .await
    }

    async fn list_runners(&self, stale_after: Duration) -> StoreResult<Vec<RunnerInfo>> {
        let rows: Vec<RunnerRow> = self
            .read(|c| {
                c.prepare_cached(&format!(
                    "SELECT {COLS} FROM runners ORDER BY registered_at, runner_id"
                ))
                .and_then(|mut st| st.query_map([], runner_row)?.collect())
                .map_err(internal)
            })
            .await?;
        let now = Utc::now();
        rows.iter().map(|r| r.info(now, stale_after)).collect()
    }

    async fn list_runners_page(
        &self,
        stale_after: Duration,
        filter: &RunnerFilter,
        after: Option<RunnerCursor>,
        limit: i64,
    ) -> StoreResult<RunnerPage> {
        let filter = filter.clone();
        let now = Utc::now();
        let since = runners::online_since_ms(now, stale_after);
        let rows: Vec<RunnerRow> = self
            .read(move |c| {
                let (sql, vals) =
                    statements::runners_page(&filter, after.as_ref(), since, limit, mark);
                c.prepare_cached(&sql)
                    .and_then(|mut st| st.query_map(values(vals), runner_row)?.collect())
                    .map_err(internal)
            })
            .await?;
        runners::page(rows, limit, now, stale_after)
    }

    async fn remove_runner(&self, id: &str, self_: bool) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |w| {
            if self_ {
                let sql = "DELETE FROM runners WHERE runner_id = ?";
                return runners::removed(delete(w, sql, [&id], &id, DEREGISTERED)?.is_some());
            }
            let marked = w
                .prepare_cached("UPDATE runners SET deregister = 1 WHERE runner_id = ?")
                .and_then(|mut st| st.execute([&id]))
                .map_err(internal)?;
            runners::removed(marked > 0)
        })
        .await
    }

    async fn take_deregistration(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |w| {
            let sql = "DELETE FROM runners WHERE runner_id = ? AND deregister = 1";
            Ok(delete(w, sql, [&id], &id, DEREGISTERED)?.is_some())
        })
        .await
    }

    async fn reap_runners(&self, remove_after: Duration) -> StoreResult<Vec<Resolved>> {
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
            // A runner that heartbeated in the meantime stays.
            let sql = "DELETE FROM runners WHERE runner_id = ?1 AND last_heartbeat_ms < ?2";
            let failed = self
                .write(move |w| delete(w, sql, (&id, cutoff), &id, DISCONNECTED))
                .await?;
            out.extend(failed.unwrap_or_default());
        }
        Ok(out)
    }
}
