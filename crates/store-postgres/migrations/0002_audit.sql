-- The audit log: who did what (see the coordinator's audit module). No secrets and no
-- bodies; ids come from an identity sequence and are never reused (page cursors).
CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
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
