SELECT id, x, y, label, event_ts FROM point_samples WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id
