-- Feature store schema (SQLite). Timestamps are UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'.
CREATE TABLE IF NOT EXISTS point_samples (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    x         REAL,
    y         REAL,
    label     TEXT,
    event_ts  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS ix_point_samples_event_ts ON point_samples (event_ts);

CREATE TABLE IF NOT EXISTS predictions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_id      INTEGER NOT NULL REFERENCES point_samples (id),
    predicted      REAL NOT NULL,
    model_name     TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    mlflow_run_id  TEXT NOT NULL,
    inference_ms   REAL NOT NULL,
    predicted_at   TEXT NOT NULL,
    CONSTRAINT uq_prediction_per_model UNIQUE (model_name, model_version, sample_id)
);
CREATE INDEX IF NOT EXISTS ix_predictions_sample ON predictions (sample_id);

-- Key/value settings, as IRIS keeps ^ML.Config("ModelPath"): the serving pointer lives here.
CREATE TABLE IF NOT EXISTS ml_config (
    config_key    TEXT PRIMARY KEY,
    config_value  TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- Training runs seen by the store, so monitoring can tell whether one is active without Airflow's DB.
CREATE TABLE IF NOT EXISTS training_runs (
    run_id       TEXT PRIMARY KEY,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    status       TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS retrain_triggers (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    triggered_at       TEXT NOT NULL,
    reason             TEXT NOT NULL,
    window_start       TEXT NOT NULL,
    window_end         TEXT NOT NULL,
    monitoring_run_id  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_retrain_triggers_at ON retrain_triggers (triggered_at);
