//! For tests: a fresh, empty database per test on the server `AOF_TEST_DATABASE_URL`
//! names, so tests run in parallel without seeing each other's rows.

use sqlx::{postgres::PgConnectOptions, ConnectOptions, Connection};

/// The server tests use, from `AOF_TEST_DATABASE_URL`. With `CI=true` a missing URL is
/// an error (CI must test PostgreSQL); otherwise `None` and the caller says it skipped.
pub fn base_url() -> Option<String> {
    match std::env::var("AOF_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but AOF_TEST_DATABASE_URL is unset: PostgreSQL tests must run in CI (scripts/ci/postgres.sh)")
        }
        _ => None,
    }
}

/// Creates `aof_test_<uuid>` on the server of `base` and returns its URL.
pub async fn fresh_database(base: &str) -> anyhow::Result<String> {
    let opts: PgConnectOptions = base.parse()?;
    let mut conn = opts.connect().await?;
    let name = format!("aof_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let mut url = url_without_db(base);
    url.push('/');
    url.push_str(&name);
    Ok(url)
}

/// `postgres://user:pw@host:port/db?x` → `postgres://user:pw@host:port` (query dropped).
fn url_without_db(base: &str) -> String {
    let no_query = base.split('?').next().unwrap_or(base);
    let after_scheme = no_query.find("://").map(|i| i + 3).unwrap_or(0);
    match no_query[after_scheme..].find('/') {
        Some(i) => no_query[..after_scheme + i].to_string(),
        None => no_query.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn strips_database_and_query() {
        assert_eq!(
            super::url_without_db("postgres://u:p@127.0.0.1:5433/aof?sslmode=disable"),
            "postgres://u:p@127.0.0.1:5433"
        );
        assert_eq!(
            super::url_without_db("postgres://u@h:1"),
            "postgres://u@h:1"
        );
    }
}
