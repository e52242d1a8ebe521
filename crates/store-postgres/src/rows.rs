//! Row reading (`aof_store::rows` maps the columns), and the small queries every module
//! needs inside a transaction.

use sqlx::{
    postgres::{PgArguments, PgRow},
    query::Query,
    PgConnection, Postgres, Row,
};

use aof_core::SessionStatus;
use aof_store::{
    import::Col,
    rows::{self, Columns, RUN_COLS, SESSION_COLS},
    RunRecord, StoreError, StoreResult,
};
use aof_wire::Session;

use crate::{internal, WriteTx};

/// `aof_store::rows::Columns`' marker for this backend.
pub(crate) struct Pg;

impl Columns<Pg> for PgRow {
    type Error = StoreError;
    fn text(&self, col: &str) -> StoreResult<Option<String>> {
        self.try_get(col).map_err(internal)
    }
    fn int(&self, col: &str) -> StoreResult<Option<i64>> {
        // Most integer columns are BIGINT; `audit_log.status` is INTEGER, EXISTS a boolean.
        let wide = self.try_get::<Option<i64>, _>(col);
        let narrow = || {
            self.try_get::<Option<i32>, _>(col)
                .map(|v| v.map(i64::from))
        };
        let flag = || {
            self.try_get::<Option<bool>, _>(col)
                .map(|v| v.map(i64::from))
        };
        wide.or_else(|_| narrow())
            .or_else(|_| flag())
            .map_err(internal)
    }
    fn list(&self, col: &str) -> StoreResult<Vec<String>> {
        self.try_get(col).map_err(internal)
    }
    fn bad(&self, col: &str, e: String) -> StoreError {
        internal(anyhow::anyhow!("column {col}: {e}"))
    }
}

/// Every row of `rows` mapped by `f` (one of `aof_store::rows`).
pub(crate) fn all<T>(rows: Vec<PgRow>, f: fn(&PgRow) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(f).collect()
}

/// PostgreSQL's numbered placeholder, for `aof_store::statements`.
pub(crate) fn mark(i: usize) -> String {
    format!("${i}")
}

/// Binds `aof_store`'s values (`import::Col`) in order.
pub(crate) fn bind_all(
    mut q: Query<'_, Postgres, PgArguments>,
    cols: Vec<Col>,
) -> Query<'_, Postgres, PgArguments> {
    for v in cols {
        q = match v {
            Col::Text(t) => q.bind(t),
            Col::Int(i) => q.bind(i),
            Col::OptInt(i) => q.bind(i),
        };
    }
    q
}

/// How a read inside a write transaction locks the rows it returns (lib.rs: the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    /// A plain read (outside a write, or rows the write does not decide on).
    None,
    /// The write decides from the row and may change it.
    Update,
    /// The write depends on the row staying as it is (a lease it checked).
    Share,
}

impl Lock {
    pub fn sql(self) -> &'static str {
        match self {
            Lock::None => "",
            Lock::Update => " FOR UPDATE",
            Lock::Share => " FOR SHARE",
        }
    }
}

pub(crate) async fn load_run(
    conn: &mut PgConnection,
    run_id: &str,
    lock: Lock,
) -> StoreResult<Option<RunRecord>> {
    let lock = lock.sql();
    let row = sqlx::query(&format!(
        "SELECT {RUN_COLS} FROM runs WHERE run_id = $1{lock}"
    ))
    .bind(run_id)
    .fetch_optional(conn)
    .await
    .map_err(internal)?;
    row.as_ref().map(rows::run).transpose()
}

pub(crate) async fn load_session(
    conn: &mut PgConnection,
    session_id: &str,
    lock: Lock,
) -> StoreResult<Option<Session>> {
    let lock = lock.sql();
    let row = sqlx::query(&format!(
        "SELECT {SESSION_COLS} FROM sessions WHERE session_id = $1{lock}"
    ))
    .bind(session_id)
    .fetch_optional(conn)
    .await
    .map_err(internal)?;
    row.as_ref().map(rows::session).transpose()
}

/// Sets a session's status and feeds `session_updated` with the new row.
pub(crate) async fn set_session_status(
    w: &mut WriteTx<'_>,
    session_id: &str,
    status: SessionStatus,
) -> StoreResult<Option<Session>> {
    // RETURNING gives the new row in the same statement; no row means unchanged or absent.
    let changed = sqlx::query(&format!(
        "UPDATE sessions SET status = $1 WHERE session_id = $2 AND status <> $3 RETURNING {SESSION_COLS}"
    ))
    .bind(status.as_str())
    .bind(session_id)
    .bind(status.as_str())
    .fetch_optional(&mut *w.tx)
    .await
    .map_err(internal)?;
    match changed {
        Some(row) => {
            let s = rows::session(&row)?;
            crate::callbacks::record_if_callback(w, &s, status).await?;
            feed_session(w, aof_wire::sse::SESSION_UPDATED, &s).await?;
            Ok(Some(s))
        }
        None => load_session(&mut w.tx, session_id, Lock::None).await,
    }
}

pub(crate) async fn feed_session(w: &mut WriteTx<'_>, kind: &str, s: &Session) -> StoreResult<()> {
    let data = serde_json::json!({ "session": s });
    w.feed(kind, Some(&s.session_id), data).await?;
    Ok(())
}
