-- The model registry: models, versions, production changes, predictions, the audit trail,
-- and the outbox of notifications. Nothing here is ever deleted (triggers refuse it), and
-- retention never touches these tables.

CREATE TABLE models (
    name               TEXT PRIMARY KEY,
    -- The production pointer: a model has at most one production version because it has one
    -- pointer, changed only by compare-and-set.
    production_version TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE model_versions (
    model           TEXT NOT NULL REFERENCES models (name),
    version         TEXT NOT NULL,
    -- JSON object of named metrics, e.g. {"r2": 0.91, "rmse": 3.2}.
    metrics         TEXT NOT NULL DEFAULT '{}',
    artifact_path   TEXT,
    artifact_sha256 TEXT,
    artifact_size   INTEGER,
    artifact_bytes  BLOB,
    source          TEXT,
    notes           TEXT,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (model, version)
) WITHOUT ROWID;

-- Every change of production, append-only: which version was in production when.
CREATE TABLE model_deployments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    model        TEXT NOT NULL REFERENCES models (name),
    from_version TEXT,
    to_version   TEXT NOT NULL,
    reason       TEXT NOT NULL,
    actor        TEXT NOT NULL,
    at           TEXT NOT NULL
);
CREATE INDEX model_deployments_model ON model_deployments (model, id);

CREATE TABLE model_predictions (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    model     TEXT NOT NULL,
    version   TEXT NOT NULL,
    -- Identifies the scored row, so two versions that scored the same rows can be compared
    -- pairwise.
    row_key   TEXT,
    predicted REAL NOT NULL,
    actual    REAL,
    at        TEXT NOT NULL,
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
);
CREATE INDEX model_predictions_version ON model_predictions (model, version, at);

-- The audit trail: every check verdict, rollback, promotion and refused or failed attempt.
CREATE TABLE model_alerts (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    model   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    verdict TEXT,
    message TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}',
    dry_run INTEGER NOT NULL DEFAULT 0,
    at      TEXT NOT NULL
);
CREATE INDEX model_alerts_model ON model_alerts (model, id);

-- Notifications not yet sent, written in the same transaction as the event that causes them.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    payload    TEXT NOT NULL DEFAULT '{}',
    state      TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TRIGGER models_keep BEFORE DELETE ON models
BEGIN SELECT RAISE(ABORT, 'the model registry keeps everything: models are never deleted'); END;
CREATE TRIGGER model_versions_keep BEFORE DELETE ON model_versions
BEGIN SELECT RAISE(ABORT, 'the model registry keeps everything: versions are never deleted'); END;
CREATE TRIGGER model_deployments_keep BEFORE DELETE ON model_deployments
BEGIN SELECT RAISE(ABORT, 'the model registry keeps everything: deployments are never deleted'); END;
CREATE TRIGGER model_deployments_append_only BEFORE UPDATE ON model_deployments
BEGIN SELECT RAISE(ABORT, 'deployment events are append-only'); END;
CREATE TRIGGER model_alerts_keep BEFORE DELETE ON model_alerts
BEGIN SELECT RAISE(ABORT, 'the model registry keeps everything: alerts are never deleted'); END;
