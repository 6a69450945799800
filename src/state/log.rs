//! Task attempt logs: what a task's log holds, so that the task side (`task::capture`), the
//! store and the messages about failures speak of the same lines.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One line of a task attempt's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub ts: DateTime<Utc>,
    pub level: LogLevel,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LogLevel {
    type Err = crate::state::UnknownName;

    /// Strict: a stored level that is not one of ours is an error, not `info`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::state::parse_name(
            "log level",
            s,
            &[
                LogLevel::Debug,
                LogLevel::Info,
                LogLevel::Warn,
                LogLevel::Error,
            ],
            LogLevel::as_str,
        )
    }
}
