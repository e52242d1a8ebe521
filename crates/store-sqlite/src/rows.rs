//! Row reading (`aof_store::rows` maps the columns), and the small queries every module
//! needs inside a transaction.

use rusqlite::{
    types::{Type, Value},
    Connection, OptionalExtension, Row,
};

use aof_core::SessionStatus;
use aof_store::{
    import::Col,
    rows::{self, Columns, RUN_COLS, SESSION_COLS},
    RunRecord, StoreResult,
};
use aof_wire::Session;

use crate::{internal, Tx};

/// `aof_store::rows::Columns`' marker for this backend.
pub(crate) struct Sqlite;

impl Columns<Sqlite> for Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, col: &str) -> rusqlite::Result<Option<String>> {
        self.get(col)
    }
    fn int(&self, col: &str) -> rusqlite::Result<Option<i64>> {
        self.get(col)
    }
    fn list(&self, col: &str) -> rusqlite::Result<Vec<String>> {
        serde_json::from_str(&self.str(col)?).map_err(|e| self.bad(col, e.to_string()))
    }
    fn bad(&self, col: &str, e: String) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            Type::Text,
            format!("column {col}: {e}").into(),
        )
    }
}

/// SQLite's numbered placeholder, for `aof_store::statements`.
pub(crate) fn mark(i: usize) -> String {
    format!("?{i}")
}

/// `aof_store`'s values (`import::Col`) as SQLite's, in order.
pub(crate) fn values(cols: Vec<Col>) -> impl rusqlite::Params {
    rusqlite::params_from_iter(cols.into_iter().map(|v| match v {
        Col::Text(t) => t.map_or(Value::Null, Value::Text),
        Col::Int(i) => Value::Integer(i),
        Col::OptInt(i) => i.map_or(Value::Null, Value::Integer),
    }))
}

pub(crate) fn load_run(conn: &Connection, run_id: &str) -> StoreResult<Option<RunRecord>> {
    conn.prepare_cached(&format!("SELECT {RUN_COLS} FROM runs WHERE run_id = ?"))
        .and_then(|mut st| st.query_row([run_id], |r| rows::run(r)).optional())
        .map_err(internal)
}

pub(crate) fn load_session(conn: &Connection, session_id: &str) -> StoreResult<Option<Session>> {
    conn.prepare_cached(&format!(
        "SELECT {SESSION_COLS} FROM sessions WHERE session_id = ?"
    ))
    .and_then(|mut st| st.query_row([session_id], |r| rows::session(r)).optional())
    .map_err(internal)
}

/// Sets a session's status and feeds `session_updated` with the new row.
pub(crate) fn set_session_status(
    w: &mut Tx<'_>,
    session_id: &str,
    status: SessionStatus,
) -> StoreResult<Option<Session>> {
    // RETURNING gives the new row in the same statement; no row means unchanged or absent.
    let changed = w
        .prepare_cached(&format!(
            "UPDATE sessions SET status = ?1 WHERE session_id = ?2 AND status <> ?1 \
             RETURNING {SESSION_COLS}"
        ))
        .and_then(|mut st| {
            st.query_row((status.as_str(), session_id), |r| rows::session(r))
                .optional()
        })
        .map_err(internal)?;
    match changed {
        Some(s) => {
            crate::callbacks::record_if_callback(w, &s, status)?;
            feed_session(w, aof_wire::sse::SESSION_UPDATED, &s)?;
            Ok(Some(s))
        }
        None => load_session(w, session_id),
    }
}

pub(crate) fn feed_session(w: &mut Tx<'_>, kind: &str, s: &Session) -> StoreResult<()> {
    let data = serde_json::json!({ "session": s });
    w.feed(kind, Some(&s.session_id), data)?;
    Ok(())
}
