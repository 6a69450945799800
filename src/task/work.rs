//! Running CPU-bound work (training, scoring) off the async runtime, where it cannot starve
//! the scheduler, while it still stops when the attempt is cancelled and reports progress to
//! the attempt's log.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::task::{TaskContext, TaskError};

/// What CPU-bound work gets: a stop check tied to the attempt, and a way to log progress.
pub struct Work {
    token: CancellationToken,
    log: mpsc::UnboundedSender<String>,
}

impl Work {
    /// Whether the attempt was cancelled (timeout, shutdown): check it often and return early.
    pub fn stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// A line for the attempt's log, written as soon as the runtime picks it up.
    pub fn info(&self, line: impl Into<String>) {
        // The receiver lives until the work ends; a send can only fail after that.
        let _ = self.log.send(line.into());
    }
}

impl TaskContext {
    /// Runs `f` on the blocking pool, writing its progress lines to the task log as they come.
    /// A panic in `f` fails the attempt (retryable); `f`'s own errors are `f`'s to mark.
    pub async fn run_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Work) -> T + Send + 'static,
    ) -> Result<T, TaskError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let work = Work {
            token: self.cancellation_token().clone(),
            log: tx,
        };
        let mut handle = tokio::task::spawn_blocking(move || f(&work));
        loop {
            tokio::select! {
                Some(line) = rx.recv() => self.info(line),
                done = &mut handle => {
                    while let Ok(line) = rx.try_recv() {
                        self.info(line);
                    }
                    return done.map_err(|e| TaskError::failed(format!("the work thread failed: {e}")));
                }
            }
        }
    }
}
