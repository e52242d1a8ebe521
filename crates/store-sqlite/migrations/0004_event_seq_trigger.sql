-- Keeps sessions.next_seq one past the newest event, so an event can be appended with a
-- single INSERT … SELECT (the fast path) as well as by the transactional path.
CREATE TRIGGER feed_next_seq AFTER INSERT ON feed
WHEN NEW.seq IS NOT NULL
BEGIN
    UPDATE sessions SET next_seq = NEW.seq + 1
    WHERE session_id = NEW.session_id AND next_seq <= NEW.seq;
END;
