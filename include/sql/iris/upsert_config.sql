-- IRIS upsert: INSERT OR UPDATE matches on the primary key config_key and updates the row if present.
INSERT OR UPDATE INTO ml_config (config_key, config_value, updated_at) VALUES (?, ?, ?)
