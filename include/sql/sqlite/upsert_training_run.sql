INSERT INTO training_runs (run_id, started_at, finished_at, status) VALUES (?, ?, NULL, 'running')
ON CONFLICT (run_id) DO UPDATE SET started_at = excluded.started_at, finished_at = NULL, status = 'running'
