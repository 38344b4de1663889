-- CROSS JOIN makes SQLite drive from the time window (ix_point_samples_event_ts, already in ORDER BY
-- order) and probe each sample's prediction through the unique (model_name, model_version, sample_id)
-- index: the cost follows the window, not every prediction the model version ever made.
SELECT s.id AS sample_id, s.event_ts, s.x, s.y, p.predicted, p.predicted_at
FROM point_samples s
CROSS JOIN predictions p ON p.sample_id = s.id
WHERE p.model_name = ? AND p.model_version = ?
  AND s.y IS NOT NULL
  AND s.event_ts >= ? AND s.event_ts < ?
ORDER BY s.event_ts, s.id
