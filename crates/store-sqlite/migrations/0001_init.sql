-- Sessions: one agent conversation. `next_seq` numbers its events without gaps.
CREATE TABLE sessions (
    session_id          TEXT PRIMARY KEY,
    status              TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    project_dir         TEXT,
    agent_name          TEXT,
    last_resumed_at     TEXT,
    parent_session_id   TEXT,
    executor_session_id TEXT,
    executor_profile    TEXT,
    hostname            TEXT,
    next_seq            INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX sessions_created ON sessions(created_at);

-- Runs. Lease columns are set only while a runner holds the run.
CREATE TABLE runs (
    run_id            TEXT PRIMARY KEY,
    run_type          TEXT NOT NULL,
    session_id        TEXT NOT NULL,
    agent_name        TEXT,
    parameters        TEXT NOT NULL,
    project_dir       TEXT,
    parent_session_id TEXT,
    execution_mode    TEXT NOT NULL,
    demands           TEXT,
    scope             TEXT,
    status            TEXT NOT NULL,
    runner_id         TEXT,
    error             TEXT,
    created_at        TEXT NOT NULL,
    claimed_at        TEXT,
    started_at        TEXT,
    completed_at      TEXT,
    timeout_at        TEXT,
    timeout_ms        INTEGER,
    attempt           INTEGER NOT NULL DEFAULT 0,
    lease_token       TEXT,
    lease_expires_ms  INTEGER,
    stop_delivered    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_session ON runs(session_id);
CREATE INDEX runs_runner ON runs(runner_id) WHERE runner_id IS NOT NULL;

-- The feed: every SSE item and every session event, in commit order. `cursor` is the
-- global position (SSE id); `seq` numbers events within a session.
CREATE TABLE feed (
    cursor     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    session_id TEXT,
    seq        INTEGER,
    run_id     TEXT,
    idem_key   TEXT,
    event_type TEXT,
    data       TEXT NOT NULL
);
CREATE UNIQUE INDEX feed_session_seq ON feed(session_id, seq) WHERE seq IS NOT NULL;
CREATE UNIQUE INDEX feed_idem ON feed(session_id, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX feed_by_session ON feed(session_id, cursor);

CREATE TABLE runners (
    runner_id             TEXT PRIMARY KEY,
    instance_id           TEXT,
    registered_at         TEXT NOT NULL,
    last_heartbeat        TEXT NOT NULL,
    last_heartbeat_ms     INTEGER NOT NULL,
    hostname              TEXT NOT NULL,
    project_dir           TEXT NOT NULL,
    executor_profile      TEXT NOT NULL,
    executor              TEXT NOT NULL,
    tags                  TEXT NOT NULL,
    require_matching_tags INTEGER NOT NULL DEFAULT 0,
    deregister            INTEGER NOT NULL DEFAULT 0
);
