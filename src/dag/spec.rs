//! A DAG as it is after loading and validation: every value parsed, every default applied,
//! every reference checked. Nothing here does I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::dag::graph::DagGraph;
use crate::state::NotifySpec;
use crate::task::template::ConfigTemplate;

/// A validated DAG. Tasks are kept in topological order, so index order is a valid run order.
#[derive(Debug)]
pub struct Dag {
    pub id: String,
    pub description: String,
    pub file: PathBuf,
    /// The TOML text the DAG was loaded from; runs keep it so they finish with the version they
    /// started with.
    pub source: String,
    pub schedule: Option<Schedule>,
    pub timezone: chrono_tz::Tz,
    /// No scheduled tick before this (default: when the scheduler first sees the DAG).
    pub start_date: Option<chrono::DateTime<chrono::Utc>>,
    /// No scheduled tick after this.
    pub end_date: Option<chrono::DateTime<chrono::Utc>>,
    pub catchup: bool,
    /// Paused when the scheduler first sees it (Airflow's `is_paused_upon_creation`).
    pub paused: bool,
    pub max_active_runs: u32,
    pub max_active_tasks: u32,
    pub tags: Vec<String>,
    /// Declared parameters and their defaults. A trigger's conf may override them, with values
    /// of the same type.
    pub params: BTreeMap<String, serde_json::Value>,
    pub notify: NotifySpec,
    pub tasks: Vec<TaskSpec>,
    pub graph: DagGraph,
}

impl Dag {
    pub fn task(&self, id: &str) -> Option<&TaskSpec> {
        self.graph.index_of(id).map(|i| &self.tasks[i])
    }
}

/// A cron schedule, kept with the text it was written as.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expression: String,
    pub cron: croner::Cron,
}

#[derive(Debug)]
pub struct TaskSpec {
    pub id: String,
    pub task_type: String,
    /// Direct upstream task ids, as written.
    pub depends_on: Vec<String>,
    pub trigger_rule: TriggerRule,
    pub config: ConfigTemplate,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    /// Task-level notification settings; empty lists mean "inherit the DAG's".
    pub notify: NotifySpec,
}

/// How often and how patiently a task is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; a task runs at most `retries + 1` times.
    pub retries: u32,
    pub delay: Duration,
    pub backoff: Backoff,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 0,
            delay: Duration::from_secs(30),
            backoff: Backoff::Fixed,
            max_delay: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    pub fn max_attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// The wait before the attempt after `failed_attempt` (1-based). Exponential backoff doubles
    /// per failure and is capped by `max_delay`; there is no jitter, so tests and operators can
    /// predict the next attempt exactly.
    pub fn delay_after(&self, failed_attempt: u32) -> Duration {
        let delay = match self.backoff {
            Backoff::Fixed => self.delay,
            Backoff::Exponential => {
                let doublings = failed_attempt.saturating_sub(1).min(32);
                self.delay.saturating_mul(1u32 << doublings.min(31))
            }
        };
        delay.min(self.max_delay)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    Fixed,
    Exponential,
}

impl FromStr for Backoff {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "fixed" => Ok(Backoff::Fixed),
            "exponential" => Ok(Backoff::Exponential),
            _ => Err(()),
        }
    }
}

/// When a task may run, given the states of its direct upstream tasks (Airflow's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    AllSuccess,
    AllFailed,
    AllDone,
    OneSuccess,
    OneFailed,
    NoneFailed,
    NoneFailedMinOneSuccess,
    NoneSkipped,
    Always,
}

impl TriggerRule {
    pub const ALL: [TriggerRule; 9] = [
        Self::AllSuccess,
        Self::AllFailed,
        Self::AllDone,
        Self::OneSuccess,
        Self::OneFailed,
        Self::NoneFailed,
        Self::NoneFailedMinOneSuccess,
        Self::NoneSkipped,
        Self::Always,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllSuccess => "all_success",
            Self::AllFailed => "all_failed",
            Self::AllDone => "all_done",
            Self::OneSuccess => "one_success",
            Self::OneFailed => "one_failed",
            Self::NoneFailed => "none_failed",
            Self::NoneFailedMinOneSuccess => "none_failed_min_one_success",
            Self::NoneSkipped => "none_skipped",
            Self::Always => "always",
        }
    }

    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl FromStr for TriggerRule {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            retries: 10,
            delay: Duration::from_secs(2),
            backoff: Backoff::Exponential,
            max_delay: Duration::from_secs(10),
        };
        let delays: Vec<u64> = (1..=5).map(|a| p.delay_after(a).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 10, 10]);
        // Absurd attempt numbers neither overflow nor exceed the cap.
        assert_eq!(p.delay_after(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn fixed_backoff_waits_the_same_each_time() {
        let p = RetryPolicy {
            retries: 3,
            delay: Duration::from_millis(500),
            backoff: Backoff::Fixed,
            max_delay: Duration::from_secs(60),
        };
        assert_eq!(p.delay_after(1), p.delay_after(3));
        assert_eq!(p.max_attempts(), 4);
    }

    #[test]
    fn trigger_rule_names_round_trip() {
        for r in TriggerRule::ALL {
            assert_eq!(r.as_str().parse::<TriggerRule>(), Ok(r));
        }
        assert!("all_sucess".parse::<TriggerRule>().is_err());
    }
}
