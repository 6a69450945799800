//! vigil: a lightweight, single-binary workflow scheduler, built first for ML model
//! operations.
//!
//! DAGs are TOML files checked when they load; their tasks are typed Rust plugins looked up by
//! name; each task's result is stored and handed to the tasks after it; every state change is
//! written to SQLite before it takes effect.
//!
//! # Layout
//!
//! Imports point one way, down this list (the layer table of `docs/ARCHITECTURE.md`, which a
//! test enforces):
//!
//! - [`cli`]: the `vigil` command line; [`cli::main`] runs it with any registry, so a program
//!   that registers its own task types gets the whole CLI. Parses, calls [`ops`], prints.
//! - [`daemon`]: the composition root of `vigil daemon`: the services, their shutdown, the
//!   in-process wake-up and the run-event broadcast.
//! - [`tasks`]: the built-in task types (`command`, `model.*`, `risk.*`, `ml.*`, ...).
//! - [`ops`]: the application layer: one function per use case, returning plain data.
//! - [`config`]: `config/vigil.toml` and `VIGIL_*` overrides.
//! - [`schedule`]: cron ticks (pure) and the scheduler service.
//! - [`run`]: executing one DAG run: trigger rules, retries, timeouts, limits, ownership.
//! - [`quality`]: model metrics and the verdicts that decide whether a model got worse.
//! - [`dag`]: the DAG file format, loading a folder, every load-time check, the graph.
//! - [`notify`]: failure, retry and model alerts by email and webhook, through the outbox.
//! - [`task`]: the [`task::Task`] trait, the registry, the per-attempt context, templating.
//! - [`store`]: durable state behind the [`store::Store`] capabilities (SQLite today).
//! - [`ml`]: pure CPU machine learning: the risk model, regressors, metrics, plots.
//! - [`state`]: the vocabulary every layer shares: states, log lines, durations, error kinds.
//!
//! See `docs/ARCHITECTURE.md` for the codemap and its invariants.

pub mod api;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dag;
pub mod ml;
pub mod notify;
pub mod ops;
pub mod quality;
pub mod run;
pub mod schedule;
pub mod state;
pub mod store;
pub mod task;
pub mod tasks;

pub use daemon::{Daemon, DaemonBuilder};
pub use task::{Registry, Task, TaskContext, TaskError};
