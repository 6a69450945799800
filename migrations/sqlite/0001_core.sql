-- Runs, task instances, results (XComs) and per-attempt logs.
-- Timestamps are RFC 3339 text in UTC, as sqlx writes chrono::DateTime<Utc>.

CREATE TABLE dag_runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id        TEXT    NOT NULL,
    logical_date  TEXT    NOT NULL,
    run_type      TEXT    NOT NULL CHECK (run_type IN ('manual', 'scheduled', 'test')),
    state         TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'success', 'failed')),
    conf          TEXT    NOT NULL DEFAULT '{}',
    -- The DAG file as it was when the run was created: a run finishes with the version it
    -- started with, even if the file changes or breaks meanwhile.
    dag_file      TEXT    NOT NULL,
    dag_source    TEXT    NOT NULL,
    queued_at     TEXT    NOT NULL,
    started_at    TEXT,
    ended_at      TEXT,
    -- A cron tick can never make two runs.
    UNIQUE (dag_id, logical_date)
);
CREATE INDEX dag_runs_state ON dag_runs (state);

CREATE TABLE task_instances (
    run_id        INTEGER NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    task_id       TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('scheduled', 'queued', 'running', 'success',
                                                    'failed', 'up_for_retry', 'upstream_failed',
                                                    'skipped')),
    -- The attempt now running or last run; 0 before the first.
    attempt       INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    started_at    TEXT,
    ended_at      TEXT,
    next_retry_at TEXT,
    error         TEXT,
    updated_at    TEXT    NOT NULL,
    PRIMARY KEY (run_id, task_id)
) WITHOUT ROWID;

CREATE TABLE xcoms (
    run_id     INTEGER NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    task_id    TEXT    NOT NULL,
    attempt    INTEGER NOT NULL,
    value      TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (run_id, task_id)
) WITHOUT ROWID;

CREATE TABLE task_logs (
    run_id  INTEGER NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    task_id TEXT    NOT NULL,
    attempt INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    ts      TEXT    NOT NULL,
    level   TEXT    NOT NULL,
    message TEXT    NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt, seq)
) WITHOUT ROWID;
