-- The daemon: per-DAG scheduler state, run ownership with heartbeats.

-- One row per DAG the scheduler has seen. Kept apart from dag_runs so that retention can
-- delete old runs without making a DAG forget where its schedule stands.
CREATE TABLE dags (
    dag_id       TEXT    PRIMARY KEY,
    paused       INTEGER NOT NULL DEFAULT 0,
    -- The newest cron tick a scheduled run was created for; NULL before the first.
    last_tick    TEXT,
    -- When the scheduler first saw the DAG: ticks before it are not "missed".
    first_seen   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL
) WITHOUT ROWID;

-- The process executing a run ("pid@host"), and when it last proved it is alive. A run whose
-- owner stopped heartbeating is taken over; NULL owner means nobody is executing it.
ALTER TABLE dag_runs ADD COLUMN owner TEXT;
ALTER TABLE dag_runs ADD COLUMN heartbeat_at TEXT;
ALTER TABLE task_instances ADD COLUMN heartbeat_at TEXT;
CREATE INDEX dag_runs_dag_state ON dag_runs (dag_id, state);
CREATE INDEX dag_runs_ended ON dag_runs (ended_at);
