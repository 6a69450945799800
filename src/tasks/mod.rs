//! The task types that ship with vigil. `register_builtins` is the list; `builtin()` a registry of them; each module holds
//! one family.

mod basic;
pub mod command;
pub mod ml;
pub mod model;

pub use basic::{Fail, Noop, Sleep};
pub use command::Command;

use crate::task::Registry;

/// A registry of every task type that ships with vigil; add your own to it with
/// [`Registry::register`].
pub fn builtin() -> Registry {
    let mut registry = Registry::new();
    register_builtins(&mut registry);
    registry
}

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
