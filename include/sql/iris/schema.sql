-- Feature store schema (InterSystems IRIS 2025.1, default schema SQLUser).
-- Timestamps are UTC text 'YYYY-MM-DD HH:MM:SS.ffffff' (VARCHAR(26)), exactly as on SQLite: the fixed
-- format sorts chronologically, and nothing depends on the server's time zone or on how the driver
-- converts TIMESTAMP/PosixTime values. The application always supplies event_ts (no server default).
-- Key and name columns use COLLATE %EXACT: IRIS's default SQLUPPER collation would make 'Model' and
-- 'model' equal (and the unique constraint case-insensitive), unlike SQLite.
-- No column name is an IRIS SQL reserved word (the reference system's "datetime" is event_ts here).
CREATE TABLE IF NOT EXISTS point_samples (
    id        BIGINT IDENTITY PRIMARY KEY,
    x         DOUBLE,
    y         DOUBLE,
    label     VARCHAR(255),
    event_ts  VARCHAR(26) COLLATE %EXACT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_point_samples_event_ts ON point_samples (event_ts);

CREATE TABLE IF NOT EXISTS predictions (
    id             BIGINT IDENTITY PRIMARY KEY,
    sample_id      BIGINT NOT NULL,
    predicted      DOUBLE NOT NULL,
    model_name     VARCHAR(255) COLLATE %EXACT NOT NULL,
    model_version  VARCHAR(64) COLLATE %EXACT NOT NULL,
    mlflow_run_id  VARCHAR(64) COLLATE %EXACT NOT NULL,
    inference_ms   DOUBLE NOT NULL,
    predicted_at   VARCHAR(26) COLLATE %EXACT NOT NULL,
    CONSTRAINT fk_predictions_sample FOREIGN KEY (sample_id) REFERENCES point_samples (id),
    CONSTRAINT uq_prediction_per_model UNIQUE (model_name, model_version, sample_id)
);
CREATE INDEX IF NOT EXISTS ix_predictions_sample ON predictions (sample_id);

-- Key/value settings. On IRIS the serving pointer itself lives in the global ^ML.Config("ModelPath").
CREATE TABLE IF NOT EXISTS ml_config (
    config_key    VARCHAR(255) COLLATE %EXACT PRIMARY KEY,
    config_value  VARCHAR(4000) NOT NULL,
    updated_at    VARCHAR(26) COLLATE %EXACT NOT NULL
);

-- Training runs seen by the store, so monitoring can tell whether one is active without Airflow's DB.
CREATE TABLE IF NOT EXISTS training_runs (
    run_id       VARCHAR(255) COLLATE %EXACT PRIMARY KEY,
    started_at   VARCHAR(26) COLLATE %EXACT NOT NULL,
    finished_at  VARCHAR(26) COLLATE %EXACT,
    status       VARCHAR(32) NOT NULL
);

CREATE TABLE IF NOT EXISTS retrain_triggers (
    id                 BIGINT IDENTITY PRIMARY KEY,
    triggered_at       VARCHAR(26) COLLATE %EXACT NOT NULL,
    reason             VARCHAR(4000) NOT NULL,
    window_start       VARCHAR(26) COLLATE %EXACT NOT NULL,
    window_end         VARCHAR(26) COLLATE %EXACT NOT NULL,
    monitoring_run_id  VARCHAR(255) NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_retrain_triggers_at ON retrain_triggers (triggered_at);
