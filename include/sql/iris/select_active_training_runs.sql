SELECT run_id, started_at FROM training_runs WHERE finished_at IS NULL AND started_at >= ? ORDER BY started_at
