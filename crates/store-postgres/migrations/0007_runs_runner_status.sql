-- A runner's live runs by status: every poll asks "any stop waiting for this runner?"
-- and every heartbeat renews its leased runs. On runner_id alone both walked the
-- runner's whole history (thousands of finished runs on a long-lived runner).
DROP INDEX IF EXISTS runs_runner;
CREATE INDEX runs_runner_status ON runs(runner_id, status) WHERE runner_id IS NOT NULL;
