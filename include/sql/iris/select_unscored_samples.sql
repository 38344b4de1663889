-- TOP (supported by every IRIS release) comes before WHERE, so the limit is bound first.
-- binds: 4 1 2 3   (limit, after_id, model_name, model_version)
SELECT TOP ? s.id, s.x, s.y, s.label, s.event_ts
FROM point_samples s
WHERE s.id > ?
  AND NOT EXISTS (
      SELECT 1 FROM predictions p
      WHERE p.model_name = ? AND p.model_version = ? AND p.sample_id = s.id)
ORDER BY s.id
