SELECT COUNT(*) FROM retrain_triggers WHERE monitoring_run_id = ?
