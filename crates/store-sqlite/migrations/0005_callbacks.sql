-- async_callback: a child session that finished, waiting to be told to its parent.
-- Written in the same transaction as the child's final status; marked delivered in the
-- same transaction as the parent's resume run, so each is delivered exactly once.
CREATE TABLE callbacks (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_session_id TEXT NOT NULL,
    child_session_id  TEXT NOT NULL,
    child_run_id      TEXT NOT NULL UNIQUE,
    status            TEXT NOT NULL,
    created_ms        INTEGER NOT NULL,
    delivered_run_id  TEXT
);
CREATE INDEX callbacks_pending ON callbacks(parent_session_id) WHERE delivered_run_id IS NULL;
