//! Trigger rules: given how a task's direct upstream tasks ended so far, may it run, must it
//! wait, or is its fate already decided? Pure, so every rule is tested as a table.
//!
//! The rules and their propagation follow Airflow: a task that can no longer satisfy its rule
//! becomes `skipped` or `upstream_failed` as soon as that is certain, without waiting for the
//! remaining upstream tasks.

use crate::dag::TriggerRule;
use crate::state::TaskState;

/// Terminal states of a task's direct upstream tasks, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamCounts {
    pub total: u32,
    pub success: u32,
    pub failed: u32,
    pub upstream_failed: u32,
    pub skipped: u32,
}

impl UpstreamCounts {
    pub fn new(total: usize) -> Self {
        UpstreamCounts {
            total: u32::try_from(total).unwrap_or(u32::MAX),
            ..Default::default()
        }
    }

    /// Counts one upstream task reaching the terminal `state`.
    pub fn record(&mut self, state: TaskState) {
        match state {
            TaskState::Success => self.success += 1,
            TaskState::Failed => self.failed += 1,
            TaskState::UpstreamFailed => self.upstream_failed += 1,
            TaskState::Skipped => self.skipped += 1,
            _ => {}
        }
    }

    pub fn done(&self) -> u32 {
        self.success + self.failed + self.upstream_failed + self.skipped
    }

    fn all_done(&self) -> bool {
        self.done() >= self.total
    }

    fn any_failed(&self) -> bool {
        self.failed + self.upstream_failed > 0
    }
}

/// What the scheduler should do with a task that has not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Wait,
    Run,
    Skip,
    UpstreamFailed,
}

pub fn evaluate(rule: TriggerRule, c: &UpstreamCounts) -> Decision {
    use Decision::*;
    if c.total == 0 {
        return Run;
    }
    match rule {
        TriggerRule::AllSuccess => {
            if c.any_failed() {
                UpstreamFailed
            } else if c.skipped > 0 {
                Skip
            } else if c.success >= c.total {
                Run
            } else {
                Wait
            }
        }
        TriggerRule::AllFailed => {
            if c.success + c.skipped > 0 {
                Skip
            } else if c.all_done() {
                Run
            } else {
                Wait
            }
        }
        TriggerRule::AllDone => {
            if c.all_done() {
                Run
            } else {
                Wait
            }
        }
        TriggerRule::OneSuccess => {
            if c.success > 0 {
                Run
            } else if !c.all_done() {
                Wait
            } else if c.skipped >= c.total {
                Skip
            } else {
                UpstreamFailed
            }
        }
        TriggerRule::OneFailed => {
            if c.any_failed() {
                Run
            } else if c.all_done() {
                Skip
            } else {
                Wait
            }
        }
        TriggerRule::NoneFailed => {
            if c.any_failed() {
                UpstreamFailed
            } else if c.all_done() {
                Run
            } else {
                Wait
            }
        }
        TriggerRule::NoneFailedMinOneSuccess => {
            if c.any_failed() {
                UpstreamFailed
            } else if !c.all_done() {
                Wait
            } else if c.skipped >= c.total {
                Skip
            } else {
                Run
            }
        }
        TriggerRule::NoneSkipped => {
            if c.skipped > 0 {
                Skip
            } else if c.all_done() {
                Run
            } else {
                Wait
            }
        }
        TriggerRule::Always => Run,
    }
}

#[cfg(test)]
mod tests {
    use super::Decision::*;
    use super::*;

    /// Upstream states as letters: s=success f=failed u=upstream_failed k=skipped r=running.
    fn counts(states: &str) -> UpstreamCounts {
        let mut c = UpstreamCounts::new(states.len());
        for ch in states.chars() {
            c.record(match ch {
                's' => TaskState::Success,
                'f' => TaskState::Failed,
                'u' => TaskState::UpstreamFailed,
                'k' => TaskState::Skipped,
                _ => TaskState::Running,
            });
        }
        c
    }

    #[test]
    fn every_rule_against_every_upstream_outcome() {
        use TriggerRule::*;
        #[rustfmt::skip]
        let table: &[(TriggerRule, &str, Decision)] = &[
            (AllSuccess, "ss", Run), (AllSuccess, "sr", Wait), (AllSuccess, "fr", UpstreamFailed),
            (AllSuccess, "su", UpstreamFailed), (AllSuccess, "sk", Skip), (AllSuccess, "kf", UpstreamFailed),
            (AllFailed, "ff", Run), (AllFailed, "fu", Run), (AllFailed, "fr", Wait),
            (AllFailed, "fs", Skip), (AllFailed, "fk", Skip), (AllFailed, "rs", Skip),
            (AllDone, "sfku", Run), (AllDone, "sr", Wait),
            (OneSuccess, "sr", Run), (OneSuccess, "fr", Wait), (OneSuccess, "fk", UpstreamFailed),
            (OneSuccess, "kk", Skip), (OneSuccess, "uf", UpstreamFailed),
            (OneFailed, "fr", Run), (OneFailed, "ur", Run), (OneFailed, "sr", Wait), (OneFailed, "sk", Skip),
            (NoneFailed, "sk", Run), (NoneFailed, "kk", Run), (NoneFailed, "sr", Wait),
            (NoneFailed, "fr", UpstreamFailed), (NoneFailed, "us", UpstreamFailed),
            (NoneFailedMinOneSuccess, "sk", Run), (NoneFailedMinOneSuccess, "kk", Skip),
            (NoneFailedMinOneSuccess, "kr", Wait), (NoneFailedMinOneSuccess, "fs", UpstreamFailed),
            (NoneSkipped, "sf", Run), (NoneSkipped, "sr", Wait), (NoneSkipped, "kr", Skip),
            (Always, "rr", Run), (Always, "ff", Run), (Always, "kk", Run),
        ];
        for (rule, states, expected) in table {
            assert_eq!(
                evaluate(*rule, &counts(states)),
                *expected,
                "{} with upstream {states}",
                rule.as_str()
            );
        }
    }

    #[test]
    fn tasks_without_upstream_run_whatever_their_rule() {
        for rule in TriggerRule::ALL {
            assert_eq!(evaluate(rule, &counts("")), Run, "{}", rule.as_str());
        }
    }
}
