-- A run created through the API with an `Idempotency-Key` keeps it: a retried request with the
-- same key finds this run instead of creating another (see migrations/sqlite/0013).
ALTER TABLE dag_runs ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX dag_runs_idempotency ON dag_runs (dag_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
