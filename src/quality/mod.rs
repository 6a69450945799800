//! The model registry's domain: metrics, and the verdicts that decide whether a production
//! model got worse. (The registry's operations, in `ops::registry`, build on these.)

pub mod interval;
pub mod metrics;
pub mod sequential;
pub mod simulate;
pub mod verdict;
