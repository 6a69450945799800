-- Task-level claims: a run's owner decides what is ready and leaves it `queued`; a worker
-- claims it (`worker`, renewed through `heartbeat_at` while the attempt runs). On SQLite one
-- daemon both decides and executes, so only the conformance suite and the schema's twin on
-- PostgreSQL (migrations/postgres/0003_task_claims.sql) use the columns; they are the same on
-- both so the store code and `vigil db copy` stay one shape.
ALTER TABLE task_instances ADD COLUMN worker TEXT;
ALTER TABLE dag_runs ADD COLUMN max_active_tasks INTEGER NOT NULL DEFAULT 16;
-- No indexes for the queue here (PostgreSQL has them): each would cost every task transition
-- of the one daemon a write, for a queue only the conformance suite uses on SQLite.
