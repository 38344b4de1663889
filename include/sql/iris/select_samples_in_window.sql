SELECT id, x, y, label, event_ts FROM point_samples WHERE event_ts >= ? AND event_ts < ? ORDER BY id
