//! Environment variables that hold this process's secrets, kept out of the tasks it starts.
//!
//! A task's process inherits the daemon's environment (as in Airflow, so `PATH`, proxies and
//! credentials meant for tasks reach them); the variables that hold vigil's own secrets do
//! not: the SMTP password named by `smtp.password_env` (registered when it is read), and
//! `VIGIL_DATABASE_URL`, which may carry the database password. A task that printed its
//! environment would otherwise put them in its log, the database and failure mail.

use std::collections::BTreeSet;
use std::sync::Mutex;

static HIDDEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Always hidden.
const ALWAYS: &[&str] = &["VIGIL_DATABASE_URL"];

/// Keeps variable `name` out of every task process started from now on.
pub fn hide_from_tasks(name: &str) {
    if let Ok(mut set) = HIDDEN.lock() {
        set.insert(name.to_string());
    }
}

/// The variables to remove from a task's environment.
pub fn hidden_from_tasks() -> Vec<String> {
    let mut names: Vec<String> = ALWAYS.iter().map(|s| s.to_string()).collect();
    if let Ok(set) = HIDDEN.lock() {
        names.extend(set.iter().cloned());
    }
    names
}
