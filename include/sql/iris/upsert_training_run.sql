-- IRIS upsert on run_id. Unlike SQLite's version it also resets started_at on a restart, so a
-- restarted run's lease is counted from its restart.
INSERT OR UPDATE INTO training_runs (run_id, started_at, finished_at, status) VALUES (?, ?, NULL, 'running')
