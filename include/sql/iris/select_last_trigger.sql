SELECT MAX(triggered_at) FROM retrain_triggers
