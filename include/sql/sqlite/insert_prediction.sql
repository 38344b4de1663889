INSERT INTO predictions
    (sample_id, predicted, model_name, model_version, mlflow_run_id, inference_ms, predicted_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (model_name, model_version, sample_id) DO NOTHING
