-- The resolved agent blueprint a run executes (sent to runners with the run).
ALTER TABLE runs ADD COLUMN blueprint TEXT;
