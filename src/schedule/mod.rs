//! When runs exist: cron ticks and catch-up (pure, in [`cron`]) and the [`Scheduler`] service
//! that creates, starts, resumes and stops runs.

pub mod cron;
mod scheduler;

pub use scheduler::{Role, Scheduler, SchedulerSettings, load_in_background};
