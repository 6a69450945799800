//! The task types that ship with vigil. `register_builtins` is the list; each module holds
//! one family.

mod basic;
pub mod command;

pub use basic::{Fail, Noop, Sleep};
pub use command::Command;

use crate::task::Registry;

/// Adds every built-in task type to `registry`.
pub fn register_builtins(registry: &mut Registry) {
    registry
        .register("noop", Noop)
        .register("sleep", Sleep)
        .register("fail", Fail)
        .register("command", Command);
}

/// Durations in task configs: `"30s"`, `"5m"`, `"1h 30m"` (humantime) or a number of seconds.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Seconds(f64),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Text(s) => humantime::parse_duration(&s).map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration `{s}`: {e}; write e.g. \"30s\" or \"5m\""
                ))
            }),
            Raw::Seconds(secs) => Duration::try_from_secs_f64(secs).map_err(|_| {
                serde::de::Error::custom(format!(
                    "invalid duration {secs}: use a number of seconds of 0 or more"
                ))
            }),
        }
    }
}
