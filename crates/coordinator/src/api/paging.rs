//! Query parameters of the paged lists (`GET /sessions`, `GET /runs` with `limit` or
//! `cursor`): the page size, the opaque cursor, and the filters. Every bad value is a
//! FastAPI-style 422 naming the parameter, never a 500.

use aof_store::{SessionCursor, SessionFilter};

use crate::{
    error::{ApiError, ApiResult},
    extract::QueryMap,
};

/// Page size when only `cursor` is given.
pub(crate) const DEFAULT_LIMIT: i64 = 50;
pub(crate) const MAX_LIMIT: i64 = 500;
/// Longest filter text accepted (a search box, not a document).
const MAX_TEXT: usize = 256;

/// A 422 for one query parameter.
pub(crate) fn invalid(k: &str, msg: &str, input: &str) -> ApiError {
    ApiError::Validation(serde_json::json!([{
        "type": "value_error", "loc": ["query", k], "msg": msg, "input": input
    }]))
}

/// `Some((cursor, limit))` when the client asked for a page (`limit` or `cursor`);
/// `None`: the whole list, as the AOF reference answers it.
pub(crate) fn page(q: &QueryMap) -> ApiResult<Option<(Option<SessionCursor>, i64)>> {
    let Some(limit) = limit(q)? else {
        return Ok(None);
    };
    let cursor = q.get("cursor").map(decode).transpose()?;
    Ok(Some((cursor, limit)))
}

/// The same for runs, whose cursor is a row number.
pub(crate) fn run_page(q: &QueryMap) -> ApiResult<Option<(Option<i64>, i64)>> {
    let Some(limit) = limit(q)? else {
        return Ok(None);
    };
    let before =
        q.get("cursor")
            .map(|v| {
                v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    invalid("cursor", "Input should be a next_cursor of this list", v)
                })
            })
            .transpose()?;
    Ok(Some((before, limit)))
}

/// The page size, when a page is asked for at all.
fn limit(q: &QueryMap) -> ApiResult<Option<i64>> {
    if q.get("limit").is_none() && q.get("cursor").is_none() {
        return Ok(None);
    }
    let limit = q.int("limit")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid(
            "limit",
            "Input should be 1 to 500",
            &limit.to_string(),
        ));
    }
    Ok(Some(limit))
}

/// A filter string: absent or empty means no filter; at most 256 characters, no NUL
/// (PostgreSQL text cannot hold one: it would be a 500 there).
pub(crate) fn text(q: &QueryMap, k: &str) -> ApiResult<Option<String>> {
    match q.get(k) {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() > MAX_TEXT || v.contains('\0') => Err(invalid(
            k,
            "Input should be at most 256 characters, without NUL",
            v,
        )),
        Some(v) => Ok(Some(v.to_string())),
    }
}

/// The session filters: `status` (an enum value), `agent`, `parent`, `q`.
pub(crate) fn session_filter(q: &QueryMap) -> ApiResult<SessionFilter> {
    let status = match q.get("status") {
        None => None,
        Some(v) => Some(v.parse().map_err(|_| {
            invalid(
                "status",
                &format!(
                    "Input should be one of: {}",
                    aof_core::SessionStatus::ALL.map(|s| s.as_str()).join(", ")
                ),
                v,
            )
        })?),
    };
    Ok(SessionFilter {
        status,
        agent: text(q, "agent")?,
        parent: text(q, "parent")?,
        text: text(q, "q")?,
    })
}

/// The opaque cursor: the row number, a dot, the creation time in hex (URL-safe as it
/// is, and nothing a client should read into).
pub(crate) fn encode(c: &SessionCursor) -> String {
    let hex: String = c.created_at.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{}.{hex}", c.row)
}

fn decode(v: &str) -> ApiResult<SessionCursor> {
    let bad = || invalid("cursor", "Input should be a next_cursor of this list", v);
    let (row, hex) = v.split_once('.').ok_or_else(bad)?;
    let row: i64 = row.parse().ok().filter(|r| *r >= 0).ok_or_else(bad)?;
    if hex.is_empty() || hex.len() % 2 != 0 || hex.len() > 128 {
        return Err(bad());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    let created_at = String::from_utf8(bytes).map_err(|_| bad())?;
    Ok(SessionCursor { created_at, row })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let c = SessionCursor {
            created_at: "2026-12-05T08:54:08.123456+00:00".into(),
            row: 42,
        };
        let s = encode(&c);
        assert!(s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '.'));
        assert_eq!(decode(&s).unwrap(), c);
        for bad in ["", "42", "x.3132", "-1.3132", "1.313", "1.zz", "1.", "1.ff"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
