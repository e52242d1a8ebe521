-- The PostgreSQL schema mirrors SQLite's migrations 0001–0005 (same tables and columns,
-- same text timestamps and millisecond integers), so both stores share row mapping.
-- `rid` stands in for SQLite's rowid: creation order of runs and sessions.

-- Sessions: one agent conversation. `next_seq` numbers its events without gaps.
CREATE TABLE sessions (
    rid                 BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
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
    next_seq            BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX sessions_created ON sessions(created_at);

-- Runs. Lease columns are set only while a runner holds the run.
CREATE TABLE runs (
    rid               BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
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
    timeout_ms        BIGINT,
    attempt           BIGINT NOT NULL DEFAULT 0,
    lease_token       TEXT,
    lease_expires_ms  BIGINT,
    stop_delivered    BIGINT NOT NULL DEFAULT 0,
    blueprint         TEXT
);
CREATE INDEX runs_status ON runs(status, rid);
CREATE INDEX runs_session ON runs(session_id, rid);
CREATE INDEX runs_runner ON runs(runner_id) WHERE runner_id IS NOT NULL;

-- The feed: every SSE item and every session event. `cursor` is the global position
-- (SSE id); `seq` numbers events within a session. Both are assigned while the writer
-- holds the store's write lock (an advisory lock), which it keeps until COMMIT, so
-- cursor order is commit order across every coordinator on this database.
CREATE TABLE feed (
    cursor     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       TEXT NOT NULL,
    session_id TEXT,
    seq        BIGINT,
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
    last_heartbeat_ms     BIGINT NOT NULL,
    hostname              TEXT NOT NULL,
    project_dir           TEXT NOT NULL,
    executor_profile      TEXT NOT NULL,
    executor              TEXT NOT NULL,
    tags                  TEXT NOT NULL,
    require_matching_tags BIGINT NOT NULL DEFAULT 0,
    deregister            BIGINT NOT NULL DEFAULT 0
);

-- API keys: the public id and a SHA-256 of the secret part (never the secret).
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT,
    role        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    revoked_ms  BIGINT
);

-- Per-run session tokens (hash only), bound to one run and its session.
CREATE TABLE session_tokens (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    expires_ms  BIGINT NOT NULL
);
CREATE INDEX session_tokens_run ON session_tokens(run_id);

-- Which runner key registered a runner id; survives removal and re-registration.
CREATE TABLE runner_keys (
    runner_id   TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL
);

-- async_callback: a child session that finished, waiting to be told to its parent.
-- Written with the child's final status; marked delivered with the parent's resume run.
CREATE TABLE callbacks (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    parent_session_id TEXT NOT NULL,
    child_session_id  TEXT NOT NULL,
    child_run_id      TEXT NOT NULL UNIQUE,
    status            TEXT NOT NULL,
    created_ms        BIGINT NOT NULL,
    delivered_run_id  TEXT
);
CREATE INDEX callbacks_pending ON callbacks(parent_session_id) WHERE delivered_run_id IS NULL;
