-- Every poll asks "is a stop owed to this runner for an idle session?"
-- (`stop_delivered = 2` on that session's ended run, see aof_store::stops). Such rows
-- are rare; without this index the question walks the runner's whole history.
CREATE INDEX runs_idle_stop_owed ON runs(runner_id) WHERE stop_delivered = 2;
