//! The task types that ship with vigil. `register_builtins` is the list; each module holds
//! one family.

mod basic;
pub mod command;
pub mod ml;
pub mod model;

pub use basic::{Fail, Noop, Sleep};
pub use command::Command;

use crate::task::Registry;

/// Adds every built-in task type to `registry`.
pub fn register_builtins(registry: &mut Registry) {
    registry
        .register("noop", Noop)
        .register("sleep", Sleep)
        .register("fail", Fail)
        .register("command", Command)
        .register("model.check_performance", model::CheckPerformance)
        .register("model.compare_versions", model::CompareVersions)
        .register("model.handle_alert", model::HandleAlert)
        .register("model.evaluate", model::Evaluate)
        .register("model.register", model::Register)
        .register("model.promote_if_better", model::PromoteIfBetter)
        .register("risk.simulate", ml::RiskSimulate)
        .register("risk.train", ml::RiskTrain)
        .register("risk.score", ml::RiskScore)
        .register("ml.train_regressor", ml::TrainRegressor)
        .register("ml.evaluate", ml::Evaluate);
}

/// Durations in task configs: `"30s"`, `"5m"`, `"1h 30m"` (humantime) or a number of seconds.
pub mod duration {
    use std::time::Duration;

    use serde::Deserializer;
    use serde::de::{Error, Visitor};

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a duration like \"30s\" or \"5m\", or a number of seconds")
        }

        fn visit_str<E: Error>(self, s: &str) -> Result<Duration, E> {
            crate::state::parse_duration(s).map_err(E::custom)
        }

        fn visit_u64<E: Error>(self, secs: u64) -> Result<Duration, E> {
            crate::state::check_duration(Duration::from_secs(secs))
                .map_err(|e| E::custom(format!("duration {secs} s {e}")))
        }

        fn visit_i64<E: Error>(self, secs: i64) -> Result<Duration, E> {
            u64::try_from(secs)
                .map_err(|_| E::custom(format!("invalid duration {secs}: it is negative")))
                .and_then(|s| self.visit_u64(s))
        }

        fn visit_f64<E: Error>(self, secs: f64) -> Result<Duration, E> {
            let d = Duration::try_from_secs_f64(secs).map_err(|_| {
                E::custom(format!("invalid duration {secs}: use 0 or more seconds"))
            })?;
            crate::state::check_duration(d).map_err(|e| E::custom(format!("duration {secs} s {e}")))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }

    /// A duration that must be more than zero: an interval or lease of zero would make the
    /// loop it paces spin.
    pub fn deserialize_positive<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let value = d.deserialize_any(DurationVisitor)?;
        if value.is_zero() {
            return Err(D::Error::custom(
                "must be more than zero (it paces a loop that would otherwise spin); write e.g. \"1s\"",
            ));
        }
        Ok(value)
    }
}
