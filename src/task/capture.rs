//! Task logs from `tracing`: every event emitted while an attempt runs (by the task, or by a
//! library it calls) goes to that attempt's log, shown by `vigil tasks logs`.
//!
//! The attempt's log is a task-local of the attempt's future, and [`CaptureLayer`] appends to
//! it. Work moved to another thread (`spawn_blocking`) leaves the task-local behind: log there
//! with [`crate::TaskContext::log`].

use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::state::{LogLevel, LogLine};

/// The log of one attempt, shared by the task and the tracing capture.
pub type AttemptLog = Arc<Mutex<LogBuffer>>;

/// The lines of one attempt's log, within a byte budget: past it, lines are counted and
/// dropped, so a task that prints without end costs neither memory nor database space.
///
/// Lines are written to the store while the attempt runs (so its log can be followed) and
/// kept here until its end, for the failure mail's tail; `stored` counts those already written.
#[derive(Debug)]
pub struct LogBuffer {
    lines: Vec<LogLine>,
    stored: usize,
    bytes: usize,
    cap: usize,
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl LogBuffer {
    pub fn new(cap: usize) -> LogBuffer {
        LogBuffer {
            lines: Vec::new(),
            stored: 0,
            bytes: 0,
            cap,
            dropped_lines: 0,
            dropped_bytes: 0,
        }
    }

    pub fn push(&mut self, line: LogLine) {
        let size = line.message.len();
        if self.bytes + size > self.cap {
            self.dropped_lines += 1;
            self.dropped_bytes += size as u64;
            return;
        }
        self.bytes += size;
        self.lines.push(line);
    }

    /// The lines not yet written to the store, and the sequence number of the first.
    pub fn unstored(&self) -> (usize, Vec<LogLine>) {
        (self.stored, self.lines[self.stored..].to_vec())
    }

    /// Records that the lines before `upto` are in the store.
    pub fn mark_stored(&mut self, upto: usize) {
        self.stored = self.stored.max(upto.min(self.lines.len()));
    }

    /// The whole log, ending with a note of what was dropped (if anything was), and how many
    /// of its first lines are already in the store.
    pub fn take(&mut self) -> (Vec<LogLine>, usize) {
        let stored = std::mem::take(&mut self.stored);
        let mut lines = std::mem::take(&mut self.lines);
        if self.dropped_lines > 0 {
            lines.push(LogLine {
                ts: Utc::now(),
                level: LogLevel::Warn,
                message: format!(
                    "{} more log lines ({} bytes) were dropped: an attempt keeps at most {} KiB of log ([executor] max_log_bytes)",
                    self.dropped_lines,
                    self.dropped_bytes,
                    self.cap >> 10
                ),
            });
        }
        self.bytes = 0;
        self.dropped_lines = 0;
        self.dropped_bytes = 0;
        (lines, stored)
    }
}

tokio::task_local! {
    static ATTEMPT_LOG: AttemptLog;
}

/// Runs `work` with `log` as the destination of its tracing events.
pub fn scope<F: Future>(log: AttemptLog, work: F) -> impl Future<Output = F::Output> {
    ATTEMPT_LOG.scope(log, work)
}

/// The `tracing` layer that fills attempt logs. vigil's CLI installs it; a program that sets
/// up its own subscriber adds it with `.with(vigil::task::CaptureLayer)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaptureLayer;

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let _ = ATTEMPT_LOG.try_with(|log| {
            let mut text = Text::default();
            event.record(&mut text);
            let level = match *event.metadata().level() {
                Level::ERROR => LogLevel::Error,
                Level::WARN => LogLevel::Warn,
                Level::INFO => LogLevel::Info,
                _ => LogLevel::Debug,
            };
            if let Ok(mut lines) = log.lock() {
                lines.push(LogLine {
                    ts: Utc::now(),
                    level,
                    message: text.0,
                });
            }
        });
    }
}

/// An event as one line: its message, then `key=value` for the other fields.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}");
            if !rest.is_empty() {
                self.0.push(' ');
                self.0.push_str(&rest);
            }
        } else {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            let _ = write!(self.0, "{}={value}", field.name());
        }
    }
}
