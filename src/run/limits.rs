//! Concurrency limits: a global number of running task attempts per process (`parallelism`)
//! and a number per DAG (`max_active_tasks`), as semaphores whose permits an attempt holds
//! until it ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct Limits {
    parallelism: usize,
    global: Arc<Semaphore>,
    /// A `std` mutex: held only to look up or insert, never across an `.await`.
    per_dag: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Limits {
    pub fn new(parallelism: usize) -> Self {
        Limits {
            parallelism: parallelism.max(1),
            global: Arc::new(Semaphore::new(parallelism.max(1))),
            per_dag: Mutex::new(HashMap::new()),
        }
    }

    /// Tasks this process runs at once.
    pub fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// Slots taken by running tasks now.
    pub fn in_use(&self) -> usize {
        self.parallelism
            .saturating_sub(self.global.available_permits())
    }

    pub fn global(&self) -> Arc<Semaphore> {
        self.global.clone()
    }

    /// The semaphore shared by all runs of DAG `id`.
    pub fn dag(&self, id: &str, max_active_tasks: u32) -> Arc<Semaphore> {
        let size = usize::try_from(max_active_tasks)
            .unwrap_or(usize::MAX)
            .max(1);
        match self.per_dag.lock() {
            Ok(mut map) => map
                .entry(id.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(size)))
                .clone(),
            // A poisoned map only means another thread panicked mid-insert; a private
            // semaphore still enforces the limit for this run.
            Err(_) => Arc::new(Semaphore::new(size)),
        }
    }
}

/// The two permits a running attempt holds.
#[derive(Debug)]
pub struct Permits {
    _dag: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

impl Permits {
    /// Waits in line for both permits, the DAG's first. Tokio's semaphores are fair: a
    /// released permit goes to the oldest waiter, so a run that waits here keeps its place
    /// and is certain to get a slot (a waiter that took a permit only to drop it again would
    /// hand it to the next waiter and never hold one itself).
    ///
    /// # Cancel safety
    /// Dropping the future gives back any permit it already holds.
    pub async fn acquire(dag: Arc<Semaphore>, global: Arc<Semaphore>) -> Option<Permits> {
        let d = dag.acquire_owned().await.ok()?;
        let g = global.acquire_owned().await.ok()?;
        Some(Permits {
            _dag: d,
            _global: g,
        })
    }

    pub fn try_acquire(dag: &Arc<Semaphore>, global: &Arc<Semaphore>) -> Option<Permits> {
        let d = dag.clone().try_acquire_owned().ok()?;
        let g = global.clone().try_acquire_owned().ok()?;
        Some(Permits {
            _dag: d,
            _global: g,
        })
    }
}
