SELECT s.id AS sample_id, s.event_ts, s.x, s.y, p.predicted, p.predicted_at
FROM point_samples s
JOIN predictions p ON p.sample_id = s.id
WHERE p.model_name = ? AND p.model_version = ?
  AND s.y IS NOT NULL
  AND s.event_ts >= ? AND s.event_ts < ?
ORDER BY s.event_ts, s.id
