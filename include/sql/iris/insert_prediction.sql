-- Idempotent per (model_name, model_version, sample_id), like SQLite's ON CONFLICT DO NOTHING: a row
-- already scored by this model version is left alone. A concurrent writer that slips past the check
-- still hits uq_prediction_per_model and fails its transaction (retried by the task), never duplicates.
-- binds: 1 2 3 4 5 6 7 3 4 1   (the seven values, then model_name, model_version, sample_id)
INSERT INTO predictions
    (sample_id, predicted, model_name, model_version, mlflow_run_id, inference_ms, predicted_at)
SELECT ?, ?, ?, ?, ?, ?, ? FROM (
    SELECT COUNT(*) AS n FROM predictions WHERE model_name = ? AND model_version = ? AND sample_id = ?
) existing
WHERE existing.n = 0
