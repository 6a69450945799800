-- The daemons serving this database (see migrations/sqlite/0011_daemons.sql).
CREATE TABLE daemons (
    owner        TEXT PRIMARY KEY,
    role         TEXT        NOT NULL,
    host         TEXT        NOT NULL,
    pid          BIGINT      NOT NULL,
    version      TEXT        NOT NULL,
    slots        BIGINT      NOT NULL,
    slots_in_use BIGINT      NOT NULL DEFAULT 0,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);
