SELECT COUNT(*) FROM predictions
