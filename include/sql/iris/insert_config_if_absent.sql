-- Insert only when the key is absent (IRIS has no ON CONFLICT). The aggregate gives exactly one row,
-- so the SELECT yields the new row when COUNT(*) = 0 and nothing otherwise; rowcount tells which.
-- binds: 1 2 3 1   (config_key, config_value, updated_at, then config_key again for the check)
INSERT INTO ml_config (config_key, config_value, updated_at)
SELECT ?, ?, ? FROM (SELECT COUNT(*) AS n FROM ml_config WHERE config_key = ?) existing
WHERE existing.n = 0
