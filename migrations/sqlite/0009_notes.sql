-- Why a person changed a run or a task by hand (`vigil runs mark`, `vigil tasks mark`), as
-- Airflow's notes: shown with the run and the task.
ALTER TABLE dag_runs ADD COLUMN note TEXT;
ALTER TABLE task_instances ADD COLUMN note TEXT;
