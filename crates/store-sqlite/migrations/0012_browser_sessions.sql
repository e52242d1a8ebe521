-- Browser sessions: the dashboard's cookie holds a random secret; only its SHA-256 is
-- stored, with the API key it acts for. Logout deletes the row, revoking the key
-- deletes all of that key's rows, and expired rows are dropped at the next login.
CREATE TABLE browser_sessions (
    hash        TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
);
CREATE INDEX browser_sessions_key ON browser_sessions(key_id);
CREATE INDEX browser_sessions_expires ON browser_sessions(expires_ms);
