-- Approvals of tool calls (issue #25): one row per call put before a person.
-- Timestamps as the wire writes them; `expires_ms` orders the timeout sweep.
CREATE TABLE approvals (
    approval_id   TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    request_key   TEXT,
    tool_name     TEXT NOT NULL,
    tool_input    TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    expires_ms    INTEGER NOT NULL,
    on_timeout    TEXT NOT NULL,
    resolution    TEXT,
    decided_at    TEXT,
    decided_by    TEXT,
    message       TEXT,
    updated_input TEXT
);
-- Asking again with the same key answers the first approval.
CREATE UNIQUE INDEX approvals_request_key ON approvals(run_id, request_key)
    WHERE request_key IS NOT NULL;
CREATE INDEX approvals_session ON approvals(session_id, created_at);
CREATE INDEX approvals_pending ON approvals(expires_ms) WHERE status = 'pending';
