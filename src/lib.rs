//! vigil: a lightweight, single-binary workflow scheduler, built first for ML model
//! operations.
//!
//! DAGs are TOML files checked when they load; their tasks are typed Rust plugins looked up by
//! name; each task's result is stored and handed to the tasks after it; every state change is
//! written to SQLite before it takes effect.
//!
//! # Layout
//!
//! Data flows one way: `config → dag → run → task → store`.
//!
//! - [`config`]: `config/vigil.toml` and `VIGIL_*` overrides.
//! - [`dag`]: the DAG file format, loading a folder, every load-time check, the graph.
//! - [`task`]: the [`task::Task`] trait, the registry, the per-attempt context, templating.
//! - [`tasks`]: the built-in task types (`command`, `noop`, `sleep`, `fail`).
//! - [`run`]: executing one DAG run: trigger rules, retries, timeouts, limits, ownership.
//! - [`schedule`]: cron ticks (pure) and the [`Daemon`] that creates, starts, resumes and
//!   stops runs.
//! - [`ml`]: deployment-risk machine learning (so far the deployment-history simulator).
//! - [`notify`]: failure, retry and model alerts by email and webhook, through the outbox.
//! - [`store`]: durable state behind the [`store::Store`] trait (SQLite).
//! - [`state`]: the run and task states shared by `run` and `store`.
//! - [`cli`]: the `vigil` command line; [`cli::main`] runs it with any registry, so a program
//!   that registers its own task types gets the whole CLI.
//!
//! See `docs/ARCHITECTURE.md` for the codemap and its invariants.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod dag;
pub mod ml;
pub mod models;
pub mod notify;
pub mod ops;
pub mod run;
pub mod schedule;
pub mod state;
pub mod store;
pub mod task;
pub mod tasks;

pub use daemon::{Daemon, DaemonBuilder};
pub use task::{Registry, Task, TaskContext, TaskError};
