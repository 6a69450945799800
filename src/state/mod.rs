//! The shared vocabulary every layer speaks: run and task states, log lines, audiences,
//! durations, wake-ups, and how input is echoed back safely. It imports nothing else of vigil.
//!
//! The string forms of states are what the database and `--json` output hold, so they never
//! change once released.

mod audience;
mod digest;
pub mod duration;
mod error;
pub mod failpoint;
pub mod limits;
mod log;
pub mod owner;
pub mod secret_env;
mod text;
mod wake;

pub use audience::{Audience, NotifySpec};
pub use digest::sha256_hex;
pub use duration::{MAX_DURATION, check_duration, parse_duration};
pub use error::{Chain, ErrorKind, Kind};
pub use log::{LogLevel, LogLine};
pub use text::{plain, shown};
pub use wake::Wake;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a DAG run stands: `queued → running → success | failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Success,
    Failed,
}

/// Where a task instance stands. `up_for_retry → queued` after the backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Scheduled,
    Queued,
    Running,
    Success,
    Failed,
    UpForRetry,
    UpstreamFailed,
    Skipped,
}

impl RunState {
    pub const ALL: [RunState; 4] = [Self::Queued, Self::Running, Self::Success, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Success => "success",
            Self::Failed => "failed",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Success | Self::Failed)
    }
}

impl TaskState {
    pub const ALL: [TaskState; 8] = [
        Self::Scheduled,
        Self::Queued,
        Self::Running,
        Self::Success,
        Self::Failed,
        Self::UpForRetry,
        Self::UpstreamFailed,
        Self::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::UpForRetry => "up_for_retry",
            Self::UpstreamFailed => "upstream_failed",
            Self::Skipped => "skipped",
        }
    }

    /// A terminal task never changes state again within its run.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failed | Self::UpstreamFailed | Self::Skipped
        )
    }
}

/// A name (a state, a log level, a channel, ...) that is not one of ours, read from input or
/// from a row; the message lists the valid ones. Decoding stored names is strict everywhere:
/// a row that says something we do not know is an error, never a silent default.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} `{given}`; expected one of: {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub expected: String,
}

impl Kind for UnknownName {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}

impl UnknownName {
    pub fn new(what: &'static str, given: &str, expected: &[&str]) -> Self {
        UnknownName {
            what,
            given: shown(given, 64),
            expected: expected.join(", "),
        }
    }
}

/// Finds the variant of `all` named `given`, strictly: the one way stored and typed names are
/// read back into enums.
pub fn parse_name<T: Copy>(
    what: &'static str,
    given: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, UnknownName> {
    all.iter()
        .copied()
        .find(|v| name(*v) == given)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
            UnknownName::new(what, given, &names)
        })
}

macro_rules! state_str_impls {
    ($ty:ty) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_name("state", s, &<$ty>::ALL, <$ty>::as_str)
            }
        }
    };
}

state_str_impls!(RunState);
state_str_impls!(TaskState);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_valid_ones() {
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>().unwrap(), s);
        }
        for s in RunState::ALL {
            assert_eq!(s.to_string().parse::<RunState>().unwrap(), s);
        }
        let err = "runing".parse::<RunState>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown state `runing`; expected one of: queued, running, success, failed"
        );
    }
}
