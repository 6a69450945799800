//! What kind of failure an error is, so that each interface can answer it its own way: the CLI
//! with an exit code, the API with a status, both without reading messages.

use std::fmt;

use serde::Serialize;

/// The kind of a library error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// What was asked for does not exist (a DAG, a run, a model version).
    NotFound,
    /// It exists, but its state forbids the change (a run for that date exists; someone
    /// else changed it first; a guard refused).
    Conflict,
    /// The input is wrong; the message says what and how to fix it.
    Invalid,
    /// Something outside vigil is not there now (the database, a mail server, a file system);
    /// trying again later may work.
    Unavailable,
    /// A bug or corrupt data: nothing the caller can fix.
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

/// Every library error says its kind.
pub trait Kind {
    fn kind(&self) -> ErrorKind;
}

/// An error with its causes, each once: `cannot read data.csv: No such file or directory`.
/// Error messages never repeat their source (it is `source()`'s to say), so logs and task
/// errors print the chain with this.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
