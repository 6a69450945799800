-- `vigil runs cancel`: the request (with who asked) waits here for the daemon executing the
-- run, which stops it and ends it failed.
ALTER TABLE dag_runs ADD COLUMN cancel_requested TEXT;
