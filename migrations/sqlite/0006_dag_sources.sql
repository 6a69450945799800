-- Each distinct DAG source is stored once, by its SHA-256, and runs point at it: a run
-- still executes the DAG version it was created from, without a copy of the file per run.
-- Runs created before this migration keep their own copy in dag_runs.dag_source.
CREATE TABLE dag_sources (
    sha256 TEXT PRIMARY KEY,
    source TEXT NOT NULL
) WITHOUT ROWID;
ALTER TABLE dag_runs ADD COLUMN dag_sha256 TEXT;
