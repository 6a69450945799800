-- Every attempt's result is kept: clearing a task to run it again leaves its earlier results
-- in history. A task's current result is the one of its current attempt while it is `success`
-- (the store's reads join on task_instances.attempt).
CREATE TABLE xcoms_by_attempt (
    run_id     INTEGER NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    task_id    TEXT    NOT NULL,
    attempt    INTEGER NOT NULL,
    value      TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt)
) WITHOUT ROWID;
INSERT INTO xcoms_by_attempt (run_id, task_id, attempt, value, created_at)
    SELECT run_id, task_id, attempt, value, created_at FROM xcoms;
DROP TABLE xcoms;
ALTER TABLE xcoms_by_attempt RENAME TO xcoms;
