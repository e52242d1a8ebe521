-- API keys: the public id and a SHA-256 of the secret part. Keys carry 32 random bytes,
-- so a fast hash is enough (no password-style stretching needed); the secret is never stored.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT,
    role        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    revoked_ms  INTEGER
);

-- Per-run session tokens (hash only), bound to one run and its session.
CREATE TABLE session_tokens (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    expires_ms  INTEGER NOT NULL
);
CREATE INDEX session_tokens_run ON session_tokens(run_id);

-- Which runner key registered a runner id; kept apart from `runners` so removal and
-- re-registration of the runner do not lose it.
CREATE TABLE runner_keys (
    runner_id   TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL
);
