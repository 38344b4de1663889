INSERT INTO point_samples (x, y, label, event_ts) VALUES (?, ?, ?, ?)
