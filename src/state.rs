//! The states of DAG runs and task instances, shared by `run` (which decides them) and `store`
//! (which remembers them). Their string forms are what the database and `--json` output hold,
//! so they never change once released.

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

/// A state name that is not one of ours; the message lists the valid ones.
#[derive(Debug, thiserror::Error)]
#[error("unknown state `{given}`; expected one of: {expected}")]
pub struct UnknownState {
    pub given: String,
    pub expected: String,
}

macro_rules! state_str_impls {
    ($ty:ty) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownState;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$ty>::ALL
                    .into_iter()
                    .find(|state| state.as_str() == s)
                    .ok_or_else(|| UnknownState {
                        given: s.to_string(),
                        expected: <$ty>::ALL
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
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

/// `text` made safe to show a person: control characters (ESC sequences, CR, LF, ...)
/// escaped so they cannot rewrite a terminal or forge a log line, and cut after `max_chars`
/// with a note of how much was left out. For echoing input back in errors and tables.
pub fn shown(text: &str, max_chars: usize) -> String {
    let cut = text.char_indices().nth(max_chars).map(|(at, _)| at);
    let mut out = String::new();
    for c in text[..cut.unwrap_or(text.len())].chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if let Some(at) = cut {
        out.push_str(&format!("… ({} more bytes)", text.len() - at));
    }
    out
}

#[cfg(test)]
mod shown_tests {
    use super::shown;

    #[test]
    fn control_characters_are_escaped_and_long_text_is_cut() {
        assert_eq!(shown("a\u{1b}[31mb\r\nc", 100), "a\\u{1b}[31mb\\r\\nc");
        assert_eq!(shown("abcdef", 3), "abc… (3 more bytes)");
        assert_eq!(shown("abc", 3), "abc");
        assert_eq!(shown("ééé", 1), "é… (4 more bytes)");
    }
}

/// The longest duration vigil accepts anywhere (a timeout, a retention age, an interval):
/// 100 years. Longer ones are typos, and they would overflow date arithmetic.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// A duration as people write it (`"30s"`, `"5m"`, `"1h 30m"`, humantime), at most
/// [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| {
        format!(
            "invalid duration `{}`: {e}; write e.g. \"30s\", \"5m\" or \"1h 30m\"",
            shown(s, 40)
        )
    })?;
    check_duration(d).map_err(|e| format!("duration `{}` {e}", shown(s, 40)))
}

/// `d` if it is at most [`MAX_DURATION`].
pub fn check_duration(d: std::time::Duration) -> Result<std::time::Duration, String> {
    if d > MAX_DURATION {
        Err("is longer than 100 years, the most vigil accepts".into())
    } else {
        Ok(d)
    }
}

#[cfg(test)]
mod duration_tests {
    #[test]
    fn durations_are_bounded() {
        assert_eq!(super::parse_duration("5m").unwrap().as_secs(), 300);
        let err = super::parse_duration("300000y").unwrap_err();
        assert!(err.contains("longer than 100 years"), "{err}");
        assert!(super::parse_duration("5 parsecs").is_err());
    }
}
