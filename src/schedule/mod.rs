//! When runs exist: cron ticks, catch-up, manual triggers, and the daemon that acts on them.

pub mod cron;
mod daemon;
pub mod lock;

pub use daemon::{Daemon, DaemonBuilder, DaemonError};
