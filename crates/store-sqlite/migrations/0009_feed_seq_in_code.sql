-- The store now moves sessions.next_seq on itself, right after inserting an event, with
-- plain single-row statements. The trigger (and the INSERT … SELECT it served) made
-- every event insert a multi-row write, which SQLite guards with a statement journal: a
-- copy of every page the insert touched, per event.
DROP TRIGGER IF EXISTS feed_next_seq;
