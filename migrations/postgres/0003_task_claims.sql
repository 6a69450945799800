-- Task-level claims (see migrations/sqlite/0012_task_claims.sql): a run's owner decides what
-- is ready and leaves it `queued`; any daemon with a free slot claims it, and its heartbeat
-- renews `task_instances.heartbeat_at` while the attempt runs. `worker` names that daemon;
-- `max_active_tasks` is the DAG's limit as the run was created, counted across daemons when
-- they claim.
ALTER TABLE task_instances ADD COLUMN worker TEXT;
ALTER TABLE dag_runs ADD COLUMN max_active_tasks BIGINT NOT NULL DEFAULT 16;
-- The queue in the order claims take it, and the attempts running (counted per DAG, listed
-- per worker).
CREATE INDEX task_instances_queued ON task_instances (run_id, updated_at, task_id) WHERE state = 'queued';
CREATE INDEX task_instances_running ON task_instances (worker) WHERE state = 'running';
