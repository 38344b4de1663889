INSERT INTO retrain_triggers (triggered_at, reason, window_start, window_end, monitoring_run_id)
VALUES (?, ?, ?, ?, ?)
