-- Issue #23: no database-wide write lock. Writers run in parallel; the feed cursor is
-- still a plain identity sequence, so cursors are handed out in call order, not in
-- commit order. Readers therefore stop at a watermark (`live.rs`): a cursor is released
-- only when every transaction that could still commit a cursor at or below it has
-- ended. That needs two things from every writer and one function for readers:
--
-- 1. A writer has its transaction id before it takes a cursor (`pg_current_xact_id()`
--    first: BEGIN does it for multi-statement writes, the append functions below do it
--    for single-statement ones). Then any transaction holding a cursor <= L, where L is
--    the sequence's last value read at time t, had its id before t.
-- 2. Within one session, commit order is cursor order: the session row is locked
--    (`FOR UPDATE` or the `next_seq` update) before any of its events takes a cursor.
--
-- `aof_feed_probe` reads L, then (in a later statement) N, the next transaction id to
-- be assigned: every transaction that can hold a cursor <= L has an id < N. Once a later
-- snapshot's xmin (its oldest running id) is >= N, all of them have ended and L is final.
-- (The snapshot's xmax is not N: it is the latest *completed* id + 1, so a running
-- transaction above every completed one is neither below xmax nor in the snapshot.)
-- N comes from age(): for a transaction without an id, age(x) = next id - x (32 bits,
-- read once per transaction, here after L); x is the snapshot's xmax, or 3 when that is
-- one of the special ids 0–2 at a wraparound.
CREATE FUNCTION aof_feed_probe(OUT last_cursor BIGINT, OUT horizon BIGINT, OUT oldest BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    snap pg_snapshot;
    xmax8 BIGINT;
    low BIGINT;
BEGIN
    SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('feed', 'cursor')), 0)
        INTO last_cursor;
    -- A separate statement: a VOLATILE function takes a new snapshot for each one.
    SELECT pg_current_snapshot() INTO snap;
    xmax8 := pg_snapshot_xmax(snap)::text::bigint;
    low := GREATEST(xmax8 % 4294967296, 3);
    horizon := xmax8 - xmax8 % 4294967296 + low + age(low::text::xid);
    oldest := pg_snapshot_xmin(snap)::text::bigint;
END
$$;

-- The append functions lose their advisory lock (and the lock key parameter, so a
-- coordinator of an older version, which relies on that lock for cursor order, fails
-- loudly instead of misordering the feed) and their explicit NOTIFY (the feed trigger
-- of 0008 sends it). Lock order, as everywhere: the run row (FOR SHARE, so no report or
-- expiry moves the lease until this commits), then the session row.
DROP FUNCTION aof_append_event(BIGINT, TEXT, TEXT, TEXT, TEXT, TEXT[], TEXT, TEXT, TEXT, TEXT);
DROP FUNCTION aof_append_events(BIGINT, TEXT, TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], TEXT, TEXT);

-- Outcomes: stored | duplicate | no_session | need_run_id | no_run | lease_conflict
-- (detail = the run's status). Anything but `stored` wrote nothing.
CREATE FUNCTION aof_append_event(
    p_session TEXT,
    p_run TEXT,
    p_idem TEXT,
    p_token TEXT,
    p_leased TEXT[],
    p_event_type TEXT,
    p_data TEXT,
    OUT outcome TEXT,
    OUT out_cursor BIGINT,
    OUT out_seq BIGINT,
    OUT detail TEXT
) LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
    found_run BOOLEAN := FALSE;
BEGIN
    PERFORM pg_current_xact_id();
    IF p_token IS NOT NULL AND p_run IS NOT NULL THEN
        SELECT session_id, status, lease_token INTO r FROM runs WHERE run_id = p_run FOR SHARE;
        found_run := FOUND;
    END IF;
    PERFORM 1 FROM sessions WHERE session_id = p_session FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'no_session';
        RETURN;
    END IF;
    -- A retry of a stored event is fine even if its lease moved on since.
    IF p_idem IS NOT NULL
       AND EXISTS (SELECT 1 FROM feed WHERE session_id = p_session AND idem_key = p_idem) THEN
        outcome := 'duplicate';
        RETURN;
    END IF;
    IF p_token IS NOT NULL THEN
        IF p_run IS NULL THEN
            outcome := 'need_run_id';
            RETURN;
        END IF;
        IF NOT found_run THEN
            outcome := 'no_run';
            RETURN;
        END IF;
        IF r.session_id <> p_session
           OR NOT (r.status = ANY (p_leased))
           OR r.lease_token IS DISTINCT FROM p_token THEN
            outcome := 'lease_conflict';
            detail := r.status;
            RETURN;
        END IF;
    END IF;
    UPDATE sessions SET next_seq = next_seq + 1 WHERE session_id = p_session
        RETURNING next_seq - 1 INTO out_seq;
    INSERT INTO feed(kind, session_id, seq, run_id, idem_key, event_type, data)
        VALUES ('event', p_session, out_seq, p_run, p_idem, p_event_type, p_data)
        RETURNING cursor INTO out_cursor;
    outcome := 'stored';
END
$$;

-- A batch: aof_append_event's checks, in its order, for every event first; then each
-- event stored in array order. Arrays are 1-based and parallel. Outcomes as above, with
-- failed_index (the 1-based event that failed). On `stored`, out_cursors/out_seqs hold
-- NULL for an event whose key was stored before (or earlier in this batch).
CREATE FUNCTION aof_append_events(
    p_session TEXT,
    p_runs TEXT[],
    p_idems TEXT[],
    p_tokens TEXT[],
    p_leased TEXT[],
    p_event_types TEXT[],
    p_datas TEXT[],
    OUT outcome TEXT,
    OUT out_cursors BIGINT[],
    OUT out_seqs BIGINT[],
    OUT detail TEXT,
    OUT failed_index INT
) LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
    n INT := coalesce(array_length(p_datas, 1), 0);
    i INT;
    checked_run TEXT;
    checked_token TEXT;
    dups BOOLEAN[] := '{}';
    k INT := 0;
    c BIGINT;
    s BIGINT;
BEGIN
    PERFORM pg_current_xact_id();
    -- The fenced runs, in one order for every writer (no deadlock between two batches).
    PERFORM 1 FROM runs WHERE run_id IN (
        SELECT DISTINCT p_runs[j] FROM generate_subscripts(p_runs, 1) AS j
        WHERE p_tokens[j] IS NOT NULL AND p_runs[j] IS NOT NULL)
        ORDER BY run_id FOR SHARE;
    PERFORM 1 FROM sessions WHERE session_id = p_session FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'no_session';
        RETURN;
    END IF;
    FOR i IN 1..n LOOP
        dups := array_append(dups, p_idems[i] IS NOT NULL AND EXISTS (
            SELECT 1 FROM feed WHERE session_id = p_session AND idem_key = p_idems[i]));
        CONTINUE WHEN dups[i];
        k := k + 1;
        CONTINUE WHEN p_tokens[i] IS NULL;
        CONTINUE WHEN checked_token IS NOT NULL
            AND p_tokens[i] = checked_token AND p_runs[i] IS NOT DISTINCT FROM checked_run;
        failed_index := i;
        IF p_runs[i] IS NULL THEN
            outcome := 'need_run_id';
            RETURN;
        END IF;
        SELECT session_id, status, lease_token INTO r FROM runs WHERE run_id = p_runs[i];
        IF NOT FOUND THEN
            outcome := 'no_run';
            RETURN;
        END IF;
        IF r.session_id <> p_session
           OR NOT (r.status = ANY (p_leased))
           OR r.lease_token IS DISTINCT FROM p_tokens[i] THEN
            outcome := 'lease_conflict';
            detail := r.status;
            RETURN;
        END IF;
        failed_index := NULL;
        checked_run := p_runs[i];
        checked_token := p_tokens[i];
    END LOOP;
    UPDATE sessions SET next_seq = next_seq + k WHERE session_id = p_session
        RETURNING next_seq - k INTO s;
    out_cursors := '{}';
    out_seqs := '{}';
    FOR i IN 1..n LOOP
        IF dups[i] OR (p_idems[i] IS NOT NULL AND EXISTS (
            SELECT 1 FROM feed WHERE session_id = p_session AND idem_key = p_idems[i])) THEN
            out_cursors := array_append(out_cursors, NULL::BIGINT);
            out_seqs := array_append(out_seqs, NULL::BIGINT);
            CONTINUE;
        END IF;
        INSERT INTO feed(kind, session_id, seq, run_id, idem_key, event_type, data)
            VALUES ('event', p_session, s, p_runs[i], p_idems[i], p_event_types[i], p_datas[i])
            RETURNING cursor INTO c;
        out_cursors := array_append(out_cursors, c);
        out_seqs := array_append(out_seqs, s);
        s := s + 1;
    END LOOP;
    -- Keys repeated inside the batch were counted in k but not stored: no seq gap.
    IF s IS DISTINCT FROM (SELECT next_seq FROM sessions WHERE session_id = p_session) THEN
        UPDATE sessions SET next_seq = s WHERE session_id = p_session;
    END IF;
    outcome := 'stored';
END
$$;
