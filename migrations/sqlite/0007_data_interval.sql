-- The start of the data interval a run covers, decided when the run is created (a scheduled
-- run: the previous cron tick; a manual one: its logical date), so that executing a run never
-- evaluates cron. NULL for runs created before this migration: they use their logical date.
ALTER TABLE dag_runs ADD COLUMN data_interval_start TEXT;
