-- The daemons serving this database, as each announces itself at start and refreshes with
-- its heartbeat (`vigil daemons`); a daemon that stops cleanly removes its row, one that dies
-- leaves it to age past the lease.
CREATE TABLE daemons (
    owner        TEXT PRIMARY KEY,
    role         TEXT    NOT NULL,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    version      TEXT    NOT NULL,
    slots        INTEGER NOT NULL,
    slots_in_use INTEGER NOT NULL DEFAULT 0,
    started_at   TEXT    NOT NULL,
    heartbeat_at TEXT    NOT NULL
) WITHOUT ROWID;
