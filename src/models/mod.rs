//! The model registry's domain: metrics, and the verdicts that decide whether a production
//! model got worse. (Registry operations, guards and tasks build on these.)

pub mod metrics;
pub mod ops;
pub mod verdict;
