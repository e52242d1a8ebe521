-- The audit log: who did what (see the coordinator's audit module). No secrets and no
-- bodies; AUTOINCREMENT so ids are never reused after a purge (they are page cursors).
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       INTEGER NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT,
    actor_name  TEXT,
    role        TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    status      INTEGER NOT NULL,
    request_id  TEXT NOT NULL,
    remote_addr TEXT
);
CREATE INDEX audit_log_at ON audit_log(at_ms);
