//! The runner list's page: keyset paging and the filters, as SQL for both backends.

use aof_wire::runner::RunnerStatus;

use super::{
    sessions::{like_pattern, where_all},
    Binds, Statement,
};
use crate::{rows::RUNNER_COLS, RunnerCursor, RunnerFilter};

/// One page of the runner list, in registration order, of the runners passing
/// `filter`, after `after`. `online_since_ms`: a heartbeat after this instant is online
/// (`now - stale_after`, as [`crate::runners::is_online`] decides). It reads `limit + 1`
/// rows; [`crate::runners::page`] keeps `limit`.
pub fn runners_page(
    filter: &RunnerFilter,
    after: Option<&RunnerCursor>,
    online_since_ms: i64,
    limit: i64,
    mark: fn(usize) -> String,
) -> Statement {
    let mut b = Binds::new(mark);
    let mut conds = Vec::new();
    if let Some(a) = after {
        let (at, id) = (b.text(&a.registered_at), b.text(&a.runner_id));
        conds.push(format!(
            "(registered_at > {at} OR (registered_at = {at} AND runner_id > {id}))"
        ));
    }
    match filter.status {
        Some(RunnerStatus::Online) => {
            conds.push(format!("last_heartbeat_ms > {}", b.int(online_since_ms)))
        }
        Some(RunnerStatus::Stale) => {
            conds.push(format!("last_heartbeat_ms <= {}", b.int(online_since_ms)))
        }
        None => {}
    }
    if let Some(t) = &filter.text {
        let pat = b.text(&like_pattern(t));
        let any = [
            "runner_id",
            "hostname",
            "project_dir",
            "executor_profile",
            "tags",
        ]
        .map(|c| format!("lower({c}) LIKE {pat} ESCAPE '\\'"))
        .join(" OR ");
        conds.push(format!("({any})"));
    }
    let filter = where_all(&conds);
    // One row more than the page: whether another page follows, without reading it.
    let limit = b.int(limit.saturating_add(1));
    let sql = format!(
        "SELECT {RUNNER_COLS} FROM runners {filter}\
         ORDER BY registered_at, runner_id LIMIT {limit}"
    );
    b.done(sql)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::Col;

    #[test]
    fn cursor_status_and_text_bind_in_order() {
        let cursor = RunnerCursor {
            registered_at: "t".into(),
            runner_id: "r_1".into(),
        };
        let filter = RunnerFilter {
            status: Some(RunnerStatus::Stale),
            text: Some("GPU_1".into()),
        };
        let (sql, vals) = runners_page(&filter, Some(&cursor), 99, 50, |i| format!("${i}"));
        assert!(
            sql.contains(
                "WHERE (registered_at > $1 OR (registered_at = $1 AND runner_id > $2)) \
                 AND last_heartbeat_ms <= $3 AND (lower(runner_id) LIKE $4 ESCAPE '\\'"
            ),
            "{sql}"
        );
        assert!(
            sql.ends_with("ORDER BY registered_at, runner_id LIMIT $5"),
            "{sql}"
        );
        assert_eq!(
            vals,
            [
                Col::Text(Some("t".into())),
                Col::Text(Some("r_1".into())),
                Col::Int(99),
                Col::Text(Some("%gpu\\_1%".into())),
                Col::Int(51),
            ]
        );
        let online = RunnerFilter {
            status: Some(RunnerStatus::Online),
            text: None,
        };
        let (sql, vals) = runners_page(&online, None, 7, 10, |i| format!("?{i}"));
        assert!(
            sql.ends_with(
                "FROM runners WHERE last_heartbeat_ms > ?1 ORDER BY registered_at, runner_id LIMIT ?2"
            ),
            "{sql}"
        );
        assert_eq!(vals, [Col::Int(7), Col::Int(11)]);
    }
}
