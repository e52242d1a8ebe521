//! What the bridge must remember across restarts, in one SQLite file
//! (`<state_dir>/bridge.db`): the Matrix sync token, the AOF feed cursor, which thread
//! belongs to which session, which chat commands were taken, and every message it
//! posted (by transaction id), so a restart neither repeats nor loses anything.

use std::path::Path;

use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
    Row, SqlitePool,
};

pub type StateResult<T> = Result<T, sqlx::Error>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS threads (
    session_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    root_event_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    started_by TEXT NOT NULL,
    UNIQUE (room_id, root_event_id)
);
CREATE TABLE IF NOT EXISTS commands (event_id TEXT PRIMARY KEY, taken_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sent (
    txn_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL
);
";

pub const SYNC_TOKEN: &str = "sync_token";
pub const FEED_CURSOR: &str = "feed_cursor";

/// A session's thread: the room and the chat message that started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    pub session_id: String,
    pub room_id: String,
    pub root_event_id: String,
    pub agent: String,
    pub started_by: String,
}

#[derive(Clone)]
pub struct State {
    pool: SqlitePool,
}

impl State {
    pub async fn open(dir: &Path) -> StateResult<State> {
        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        let opts = SqliteConnectOptions::new()
            .filename(dir.join("bridge.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        // One writer: the bridge's writes are few, and one connection keeps them ordered.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(State { pool })
    }

    pub async fn get(&self, key: &str) -> StateResult<Option<String>> {
        sqlx::query_scalar("SELECT value FROM kv WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn set(&self, key: &str, value: &str) -> StateResult<()> {
        sqlx::query("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Records a chat command as taken; false when it already was (a replayed sync).
    pub async fn take_command(&self, event_id: &str) -> StateResult<bool> {
        let done = sqlx::query("INSERT OR IGNORE INTO commands (event_id, taken_at) VALUES (?, ?)")
            .bind(event_id)
            .bind(aof_wire::now_ts())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Remembers a session's thread before its run is created, so none of its events
    /// can reach the feed before the bridge knows where they go.
    pub async fn add_thread(&self, t: &Thread) -> StateResult<()> {
        sqlx::query(
            "INSERT OR IGNORE INTO threads (session_id, room_id, root_event_id, agent, started_by) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&t.session_id)
        .bind(&t.room_id)
        .bind(&t.root_event_id)
        .bind(&t.agent)
        .bind(&t.started_by)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    pub async fn thread_of_session(&self, session_id: &str) -> StateResult<Option<Thread>> {
        self.thread_where("session_id = ?", &[session_id]).await
    }

    /// The session whose thread in `room_id` starts at `root_event_id` (a reply in
    /// another room that names the same root is not it).
    pub async fn thread_at(
        &self,
        room_id: &str,
        root_event_id: &str,
    ) -> StateResult<Option<Thread>> {
        self.thread_where(
            "room_id = ? AND root_event_id = ?",
            &[room_id, root_event_id],
        )
        .await
    }

    async fn thread_where(&self, cond: &str, args: &[&str]) -> StateResult<Option<Thread>> {
        let sql = format!(
            "SELECT session_id, room_id, root_event_id, agent, started_by FROM threads WHERE {cond}"
        );
        let mut q = sqlx::query(&sql);
        for a in args {
            q = q.bind(*a);
        }
        let row = q.fetch_optional(&self.pool).await?;
        Ok(row.map(|r| Thread {
            session_id: r.get(0),
            room_id: r.get(1),
            root_event_id: r.get(2),
            agent: r.get(3),
            started_by: r.get(4),
        }))
    }

    /// The Matrix event a transaction became, when it was already sent.
    pub async fn sent(&self, txn_id: &str) -> StateResult<Option<String>> {
        sqlx::query_scalar("SELECT event_id FROM sent WHERE txn_id = ?")
            .bind(txn_id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn record_sent(
        &self,
        txn_id: &str,
        room_id: &str,
        event_id: &str,
    ) -> StateResult<()> {
        sqlx::query("INSERT OR IGNORE INTO sent (txn_id, room_id, event_id) VALUES (?, ?, ?)")
            .bind(txn_id)
            .bind(room_id)
            .bind(event_id)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).await.unwrap();
        s.set(FEED_CURSOR, "41").await.unwrap();
        s.set(FEED_CURSOR, "42").await.unwrap();
        assert!(s.take_command("$a").await.unwrap());
        assert!(!s.take_command("$a").await.unwrap());
        let t = Thread {
            session_id: "ses_1".into(),
            room_id: "!r:x".into(),
            root_event_id: "$root".into(),
            agent: "echo".into(),
            started_by: "@alice:x".into(),
        };
        s.add_thread(&t).await.unwrap();
        s.record_sent("aof.7", "!r:x", "$m7").await.unwrap();
        drop(s);
        let s = State::open(dir.path()).await.unwrap();
        assert_eq!(s.get(FEED_CURSOR).await.unwrap().as_deref(), Some("42"));
        assert!(!s.take_command("$a").await.unwrap());
        assert_eq!(s.thread_of_session("ses_1").await.unwrap(), Some(t.clone()));
        assert_eq!(s.thread_at("!r:x", "$root").await.unwrap(), Some(t));
        assert_eq!(s.thread_at("!other:x", "$root").await.unwrap(), None);
        assert_eq!(s.sent("aof.7").await.unwrap().as_deref(), Some("$m7"));
        assert_eq!(s.sent("aof.8").await.unwrap(), None);
    }
}
