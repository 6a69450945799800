-- The whole schema as SQLite has it after its migration 0010, in PostgreSQL's types: the two
-- stores decode the same rows (`src/store/rows.rs`), so columns keep SQLite's names and plain
-- types (BIGINT, TEXT holding JSON, BOOLEAN, TIMESTAMPTZ). From here on a schema change is one
-- migration in each folder. What each table holds: migrations/sqlite/.

CREATE TABLE dag_sources (
    sha256 TEXT PRIMARY KEY,
    source TEXT NOT NULL
);

CREATE TABLE dag_runs (
    id                  BIGSERIAL PRIMARY KEY,
    dag_id              TEXT        NOT NULL,
    logical_date        TIMESTAMPTZ NOT NULL,
    run_type            TEXT        NOT NULL CHECK (run_type IN ('manual', 'scheduled', 'test')),
    state               TEXT        NOT NULL CHECK (state IN ('queued', 'running', 'success', 'failed')),
    conf                TEXT        NOT NULL DEFAULT '{}',
    dag_file            TEXT        NOT NULL,
    dag_source          TEXT        NOT NULL DEFAULT '',
    dag_sha256          TEXT,
    queued_at           TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ,
    ended_at            TIMESTAMPTZ,
    owner               TEXT,
    heartbeat_at        TIMESTAMPTZ,
    data_interval_start TIMESTAMPTZ,
    note                TEXT,
    cancel_requested    TEXT,
    -- A cron tick can never make two runs, whichever daemon creates it.
    UNIQUE (dag_id, logical_date)
);
CREATE INDEX dag_runs_state ON dag_runs (state);
CREATE INDEX dag_runs_dag_state ON dag_runs (dag_id, state);
CREATE INDEX dag_runs_ended ON dag_runs (ended_at);

CREATE TABLE task_instances (
    run_id        BIGINT      NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    task_id       TEXT        NOT NULL,
    state         TEXT        NOT NULL CHECK (state IN ('scheduled', 'queued', 'running', 'success',
                                                        'failed', 'up_for_retry', 'upstream_failed',
                                                        'skipped')),
    attempt       BIGINT      NOT NULL DEFAULT 0,
    max_attempts  BIGINT      NOT NULL,
    started_at    TIMESTAMPTZ,
    ended_at      TIMESTAMPTZ,
    next_retry_at TIMESTAMPTZ,
    error         TEXT,
    updated_at    TIMESTAMPTZ NOT NULL,
    heartbeat_at  TIMESTAMPTZ,
    note          TEXT,
    PRIMARY KEY (run_id, task_id)
);

CREATE TABLE xcoms (
    run_id     BIGINT      NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    task_id    TEXT        NOT NULL,
    attempt    BIGINT      NOT NULL,
    value      TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt)
);

CREATE TABLE task_logs (
    run_id  BIGINT      NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    task_id TEXT        NOT NULL,
    attempt BIGINT      NOT NULL,
    seq     BIGINT      NOT NULL,
    ts      TIMESTAMPTZ NOT NULL,
    level   TEXT        NOT NULL,
    message TEXT        NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt, seq)
);

CREATE TABLE dags (
    dag_id     TEXT PRIMARY KEY,
    paused     BOOLEAN     NOT NULL DEFAULT FALSE,
    last_tick  TIMESTAMPTZ,
    first_seen TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- The model registry. Nothing here is ever deleted or changed except the production pointer,
-- which changes only by compare-and-set; the triggers below refuse everything else, whoever
-- connects.
CREATE TABLE models (
    name               TEXT PRIMARY KEY,
    production_version TEXT,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);

CREATE TABLE model_versions (
    model           TEXT NOT NULL REFERENCES models (name),
    version         TEXT NOT NULL,
    metrics         TEXT NOT NULL DEFAULT '{}',
    artifact_path   TEXT,
    artifact_sha256 TEXT,
    artifact_size   BIGINT,
    artifact_bytes  BYTEA,
    source          TEXT,
    notes           TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (model, version)
);

CREATE TABLE model_deployments (
    id           BIGSERIAL PRIMARY KEY,
    model        TEXT NOT NULL REFERENCES models (name),
    from_version TEXT,
    to_version   TEXT NOT NULL,
    reason       TEXT NOT NULL,
    actor        TEXT NOT NULL,
    at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX model_deployments_model ON model_deployments (model, id);

CREATE TABLE model_predictions (
    id        BIGSERIAL PRIMARY KEY,
    model     TEXT NOT NULL,
    version   TEXT NOT NULL,
    row_key   TEXT,
    predicted DOUBLE PRECISION NOT NULL,
    actual    DOUBLE PRECISION,
    at        TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version),
    CONSTRAINT predictions_must_be_finite_numbers CHECK (
        predicted NOT IN ('NaN', 'Infinity', '-Infinity')
        AND (actual IS NULL OR actual NOT IN ('NaN', 'Infinity', '-Infinity')))
);
CREATE INDEX model_predictions_version ON model_predictions (model, version, at);

CREATE TABLE model_alerts (
    id      BIGSERIAL PRIMARY KEY,
    model   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    verdict TEXT,
    message TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}',
    dry_run BOOLEAN NOT NULL DEFAULT FALSE,
    at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX model_alerts_model ON model_alerts (model, id);

CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    payload         TEXT NOT NULL DEFAULT '{}',
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL,
    channel         TEXT NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'webhook')),
    recipients      TEXT NOT NULL DEFAULT '[]',
    html            TEXT,
    next_attempt_at TIMESTAMPTZ,
    last_error      TEXT,
    sent_at         TIMESTAMPTZ,
    lease_owner     TEXT,
    lease_until     TIMESTAMPTZ
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- One function raises the registry's refusals; each trigger passes its message.
CREATE FUNCTION vigil_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER models_keep BEFORE DELETE ON models FOR EACH ROW
EXECUTE FUNCTION vigil_refuse('the model registry keeps everything: models are never deleted');
CREATE TRIGGER model_versions_keep BEFORE DELETE ON model_versions FOR EACH ROW
EXECUTE FUNCTION vigil_refuse('the model registry keeps everything: versions are never deleted');
CREATE TRIGGER model_versions_append_only BEFORE UPDATE ON model_versions FOR EACH ROW
EXECUTE FUNCTION vigil_refuse('model versions are never changed; register a new version');
CREATE TRIGGER model_deployments_keep BEFORE DELETE ON model_deployments FOR EACH ROW
EXECUTE FUNCTION vigil_refuse('the model registry keeps everything: deployments are never deleted');
CREATE TRIGGER model_deployments_append_only BEFORE UPDATE ON model_deployments FOR EACH ROW
EXECUTE FUNCTION vigil_refuse('deployment events are append-only');
CREATE TRIGGER model_alerts_keep BEFORE DELETE ON model_alerts FOR EACH ROW
EXECUTE FUNCTION vigil_refuse('the model registry keeps everything: alerts are never deleted');
CREATE TRIGGER model_alerts_append_only BEFORE UPDATE ON model_alerts FOR EACH ROW
EXECUTE FUNCTION vigil_refuse('the audit trail is append-only');
CREATE TRIGGER model_predictions_keep BEFORE DELETE ON model_predictions FOR EACH ROW
EXECUTE FUNCTION vigil_refuse('the model registry keeps everything: predictions are never deleted');
CREATE TRIGGER model_predictions_append_only BEFORE UPDATE ON model_predictions FOR EACH ROW
EXECUTE FUNCTION vigil_refuse('predictions are append-only');
-- TRUNCATE skips row triggers; refuse it for the whole registry.
CREATE TRIGGER models_no_truncate BEFORE TRUNCATE ON models
EXECUTE FUNCTION vigil_refuse('the model registry keeps everything: models are never deleted');
CREATE TRIGGER model_versions_no_truncate BEFORE TRUNCATE ON model_versions
EXECUTE FUNCTION vigil_refuse('the model registry keeps everything: versions are never deleted');
CREATE TRIGGER model_deployments_no_truncate BEFORE TRUNCATE ON model_deployments
EXECUTE FUNCTION vigil_refuse('the model registry keeps everything: deployments are never deleted');
CREATE TRIGGER model_alerts_no_truncate BEFORE TRUNCATE ON model_alerts
EXECUTE FUNCTION vigil_refuse('the model registry keeps everything: alerts are never deleted');
CREATE TRIGGER model_predictions_no_truncate BEFORE TRUNCATE ON model_predictions
EXECUTE FUNCTION vigil_refuse('the model registry keeps everything: predictions are never deleted');

-- Deployment events name versions of their own model; the production pointer points only at
-- one, and a model keeps its name and creation time.
CREATE FUNCTION vigil_deployment_versions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM model_versions WHERE model = NEW.model AND version = NEW.to_version)
       OR (NEW.from_version IS NOT NULL AND NOT EXISTS
           (SELECT 1 FROM model_versions WHERE model = NEW.model AND version = NEW.from_version)) THEN
        RAISE EXCEPTION 'a deployment event names a version that does not exist'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER model_deployments_known_versions BEFORE INSERT ON model_deployments FOR EACH ROW
EXECUTE FUNCTION vigil_deployment_versions();

CREATE FUNCTION vigil_model_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.name <> OLD.name OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'a model keeps its name and creation time' USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.production_version IS NOT NULL AND NOT EXISTS
       (SELECT 1 FROM model_versions WHERE model = NEW.name AND version = NEW.production_version) THEN
        RAISE EXCEPTION 'production can only be a registered version of the model'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER models_guard BEFORE UPDATE ON models FOR EACH ROW
EXECUTE FUNCTION vigil_model_update();
