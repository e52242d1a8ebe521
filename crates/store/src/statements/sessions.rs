//! The session list's page: keyset paging and the filters, as SQL for both backends.

use super::{Binds, Statement};
use crate::{rows::SESSION_COLS, SessionCursor, SessionFilter};

/// One page of the session list, newest first, of the sessions passing `filter`, after
/// `after`. `row`: the backend's row number column (selected too, for the next page's
/// cursor). It reads `limit + 1` rows; [`crate::sessions::page`] keeps `limit`.
pub fn sessions_page(
    filter: &SessionFilter,
    after: Option<&SessionCursor>,
    limit: i64,
    row: &str,
    mark: fn(usize) -> String,
) -> Statement {
    let mut b = Binds::new(mark);
    let mut conds = Vec::new();
    if let Some(a) = after {
        let (at, n) = (b.text(&a.created_at), b.int(a.row));
        conds.push(format!(
            "(created_at < {at} OR (created_at = {at} AND {row} < {n}))"
        ));
    }
    if let Some(s) = filter.status {
        conds.push(format!("status = {}", b.text(s.as_str())));
    }
    if let Some(a) = &filter.agent {
        conds.push(format!("agent_name = {}", b.text(a)));
    }
    if let Some(p) = &filter.parent {
        conds.push(format!("parent_session_id = {}", b.text(p)));
    }
    if let Some(t) = &filter.text {
        // LIKE with its wildcards escaped: the text is matched literally; `lower` on
        // both sides because SQLite's LIKE and PostgreSQL's differ on case.
        let pat = b.text(&like_pattern(t));
        let any = ["session_id", "agent_name", "hostname", "project_dir"]
            .map(|c| format!("lower({c}) LIKE {pat} ESCAPE '\\'"))
            .join(" OR ");
        conds.push(format!("({any})"));
    }
    let filter = where_all(&conds);
    // One row more than the page: whether another page follows, without reading it.
    let limit = b.int(limit.saturating_add(1));
    let sql = format!(
        "SELECT {SESSION_COLS}, {row} FROM sessions {filter}\
         ORDER BY created_at DESC, {row} DESC LIMIT {limit}"
    );
    b.done(sql)
}

/// `WHERE c1 AND c2 … ` (with a trailing space), or nothing without conditions.
pub(super) fn where_all(conds: &[String]) -> String {
    match conds.is_empty() {
        true => String::new(),
        false => format!("WHERE {} ", conds.join(" AND ")),
    }
}

/// `%text%` in lower case, with LIKE's own characters (`\`, `%`, `_`) escaped by `\`.
pub(super) fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::Col;

    #[test]
    fn a_cursor_value_used_twice_binds_once() {
        let cursor = SessionCursor {
            created_at: "t".into(),
            row: 7,
        };
        let all = SessionFilter::default();
        let (sql, vals) = sessions_page(&all, Some(&cursor), 50, "rid", |i| format!("${i}"));
        assert!(
            sql.ends_with(
                "WHERE (created_at < $1 OR (created_at = $1 AND rid < $2)) \
                 ORDER BY created_at DESC, rid DESC LIMIT $3"
            ),
            "{sql}"
        );
        assert_eq!(
            vals,
            [Col::Text(Some("t".into())), Col::Int(7), Col::Int(51)]
        );
        let (sql, vals) = sessions_page(&all, None, 50, "rowid", |i| format!("?{i}"));
        assert!(sql.ends_with("FROM sessions ORDER BY created_at DESC, rowid DESC LIMIT ?1"));
        assert_eq!(vals, [Col::Int(51)], "one row more than the page");
    }
}
