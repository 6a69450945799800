//! Integration tests: one binary, one module per feature. They use real SQLite files in
//! temporary directories and drive the real `vigil` binary for end-to-end paths.

mod api;
mod architecture;
mod catalogue;
mod cli;
mod command;
mod conformance;
mod crash;
mod custom_task;
mod daemon;
mod docs;
mod embedded;
mod executor;
mod fuzz;
mod hostile;
mod load;
mod model_cli;
mod model_ops;
mod next_runs;
mod notify;
mod operator;
mod pg;
mod postgres;
mod registry;
mod risk;
mod scheduling;
mod storage;
mod store;
mod torture;
mod util;
mod validation;
mod verdicts;
mod web;
