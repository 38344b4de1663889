INSERT INTO ml_config (config_key, config_value, updated_at) VALUES (?, ?, ?)
ON CONFLICT (config_key) DO UPDATE SET config_value = excluded.config_value, updated_at = excluded.updated_at
