//! Query parameters of the paged lists (`GET /sessions`, `GET /runs` with `limit` or
//! `cursor`): the page size, the opaque cursor, and the filters. Every bad value is a
//! FastAPI-style 422 naming the parameter, never a 500.

use aof_store::{RunnerCursor, RunnerFilter, SessionCursor, SessionFilter};
use aof_wire::runner::RunnerStatus;

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
    format!("{}.{}", c.row, hex(&c.created_at))
}

fn decode(v: &str) -> ApiResult<SessionCursor> {
    let bad = || invalid("cursor", "Input should be a next_cursor of this list", v);
    let (row, at) = v.split_once('.').ok_or_else(bad)?;
    let row: i64 = row.parse().ok().filter(|r| *r >= 0).ok_or_else(bad)?;
    let created_at = unhex(at, 128).ok_or_else(bad)?;
    Ok(SessionCursor { created_at, row })
}

/// The runner filters: `status` (online or stale) and `q`.
pub(crate) fn runner_filter(q: &QueryMap) -> ApiResult<RunnerFilter> {
    let status = match q.get("status") {
        None => None,
        Some(v) => Some(
            RunnerStatus::ALL
                .into_iter()
                .find(|s| s.as_str() == v)
                .ok_or_else(|| invalid("status", "Input should be online or stale", v))?,
        ),
    };
    Ok(RunnerFilter {
        status,
        text: text(q, "q")?,
    })
}

/// The runner list's page, when one is asked for; its cursor is the last runner's
/// registration time and id, each in hex.
pub(crate) fn runner_page(q: &QueryMap) -> ApiResult<Option<(Option<RunnerCursor>, i64)>> {
    let Some(limit) = limit(q)? else {
        return Ok(None);
    };
    let cursor = q.get("cursor").map(decode_runner).transpose()?;
    Ok(Some((cursor, limit)))
}

fn decode_runner(v: &str) -> ApiResult<RunnerCursor> {
    let bad = || invalid("cursor", "Input should be a next_cursor of this list", v);
    let (at, id) = v.split_once('.').ok_or_else(bad)?;
    Ok(RunnerCursor {
        registered_at: unhex(at, 128).ok_or_else(bad)?,
        runner_id: unhex(id, 1024).ok_or_else(bad)?,
    })
}

pub(crate) fn encode_runner(c: &RunnerCursor) -> String {
    format!("{}.{}", hex(&c.registered_at), hex(&c.runner_id))
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// UTF-8 text from non-empty hex of at most `max` digits.
fn unhex(hex: &str, max: usize) -> Option<String> {
    if hex.is_empty() || hex.len() % 2 != 0 || hex.len() > max {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
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

    #[test]
    fn a_runner_cursor_round_trips_and_garbage_is_refused() {
        let c = RunnerCursor {
            registered_at: "2026-12-05T08:54:08.123Z".into(),
            runner_id: "lnch_ü.1".into(),
        };
        let s = encode_runner(&c);
        assert!(s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '.'));
        assert_eq!(decode_runner(&s).unwrap(), c);
        // A session's cursor is not a runner's, and the other way round.
        let session = encode(&SessionCursor {
            created_at: "t".into(),
            row: 1,
        });
        assert!(decode_runner(&session).is_err(), "{session}");
        assert!(decode(&s).is_err(), "{s}");
        for bad in [
            "",
            "3132",
            "3132.",
            ".3132",
            "zz.31",
            "3132.ff",
            "3132.31.32",
        ] {
            assert!(decode_runner(bad).is_err(), "{bad}");
        }
    }
}
