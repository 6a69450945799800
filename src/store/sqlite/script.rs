//! One transaction as one round trip: the multi-statement scripts every write is made of, and
//! the one connection that runs them (see the module docs of `sqlite`).

use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Arguments, AssertSqlSafe, Sqlite};

use crate::store::StoreError;
use crate::store::rows::corrupt;

/// The one connection that writes.
#[derive(Debug)]
pub(super) struct Writer {
    pub(super) conn: SqliteConnection,
    /// Set while a script runs. Still set when the next commit takes the lock means the last
    /// script was cancelled halfway, possibly inside an open transaction: roll it back first.
    pub(super) dirty: bool,
}

/// The message of the guard trigger; a script error carrying it means "stale update".
const STALE: &str = "vigil: stale update";

/// Created on the writer connection only (TEMP objects are per connection).
pub(super) const GUARD_SQL: &str = "
CREATE TEMP VIEW IF NOT EXISTS vigil_guard (changed) AS SELECT 0;
CREATE TEMP TRIGGER IF NOT EXISTS vigil_guard_check INSTEAD OF INSERT ON vigil_guard
WHEN NEW.changed = 0 BEGIN SELECT RAISE(ROLLBACK, 'vigil: stale update'); END;
";

/// A transaction as multi-statement SQL with its arguments, bound in order. Use only
/// anonymous `?` parameters: sqlx numbers `?NNN` across the whole multi-statement text, not
/// per statement, so `?1` in a later statement would bind the script's first argument. Long
/// scripts are cut into parts: SQLite copies the rest of the text each time it prepares a
/// statement, so one part of n statements costs O(n²).
pub(super) struct Script {
    parts: Vec<Part>,
}

struct Part {
    sql: String,
    args: SqliteArguments,
    statements: usize,
}

/// Rows per multi-row INSERT, well under SQLite's limit of bound variables.
pub(super) const INSERT_CHUNK: usize = 500;

/// Statements per part: one round trip each, and no quadratic prepare.
const PART_STATEMENTS: usize = 128;
/// Parts this small repeat (a chain step is the same few statements every time), so their
/// prepared statements are worth caching; big ones vary and would only fill the cache.
const CACHED_STATEMENTS: usize = 16;

impl Part {
    fn new() -> Part {
        Part {
            sql: String::new(),
            args: SqliteArguments::default(),
            statements: 0,
        }
    }
}

impl Script {
    pub(super) fn new() -> Script {
        let mut script = Script {
            parts: vec![Part::new()],
        };
        script.stmt("BEGIN IMMEDIATE");
        script
    }

    /// Appends a statement; bind its arguments right after.
    pub(super) fn stmt(&mut self, sql: &str) -> &mut Script {
        if self
            .parts
            .last()
            .is_some_and(|p| p.statements >= PART_STATEMENTS)
        {
            self.parts.push(Part::new());
        }
        if let Some(part) = self.parts.last_mut() {
            part.sql.push_str(sql);
            part.sql.push_str(";\n");
            part.statements += 1;
        }
        self
    }

    pub(super) fn bind<'q, T: sqlx::Encode<'q, Sqlite> + sqlx::Type<Sqlite>>(
        &mut self,
        value: T,
    ) -> Result<&mut Script, StoreError> {
        if let Some(part) = self.parts.last_mut() {
            part.args
                .add(value)
                .map_err(|e| corrupt("query argument", e))?;
        }
        Ok(self)
    }

    /// Fails the whole script (rolling back) unless the previous statement changed a row.
    pub(super) fn guard(&mut self) -> &mut Script {
        self.stmt("INSERT INTO vigil_guard (changed) VALUES (changes())")
    }
}

impl Writer {
    /// Runs `script` (which began with `BEGIN IMMEDIATE`) to its `COMMIT` in one round trip,
    /// returning the rows its statements produced. On any error the transaction is rolled
    /// back before the writer is released.
    pub(super) async fn run(&mut self, mut script: Script) -> Result<Vec<SqliteRow>, sqlx::Error> {
        script.stmt("COMMIT");
        let w = self;
        if w.dirty {
            // Cancelled halfway last time. "No transaction is active" is fine here.
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut w.conn).await;
        }
        w.dirty = true;
        let mut rows = Vec::new();
        for (i, part) in script.parts.into_iter().enumerate() {
            if i > 0 {
                // Between round trips of one open transaction.
                crate::state::failpoint::crash_point("store.inside_commit");
            }
            let cached = part.statements <= CACHED_STATEMENTS;
            let result = sqlx::query_with(AssertSqlSafe(part.sql), part.args)
                .persistent(cached)
                .fetch_all(&mut w.conn)
                .await;
            match result {
                Ok(mut r) => rows.append(&mut r),
                Err(e) => {
                    // The guard already rolled back; any other error may have left the
                    // transaction open.
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut w.conn).await;
                    w.dirty = false;
                    return Err(e);
                }
            }
        }
        w.dirty = false;
        Ok(rows)
    }
}

/// Whether a script failed because a guarded update matched nothing.
pub(super) fn is_stale(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.message().contains(STALE))
}
