//! Load-time errors in DAG files. Every one names the file, the line, the task (when there is
//! one) and the key, and says what to do, because the person reading it is editing that file.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One problem found in a DAG file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line of the offending key or value, when the problem has a place in the file.
    pub line: Option<usize>,
    pub task: Option<String>,
    /// Dotted path of the key, e.g. `tasks.train.depends_on` or `schedule`.
    pub key: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if let Some(task) = &self.task {
            write!(f, "task `{task}`: ")?;
        }
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

/// All problems found in one file, reported together.
#[derive(Debug, Clone, thiserror::Error)]
pub struct FileErrors {
    pub file: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

impl crate::state::Kind for FileErrors {
    fn kind(&self) -> crate::state::ErrorKind {
        crate::state::ErrorKind::Invalid
    }
}

impl FileErrors {
    /// One problem with `file` as a whole (it cannot be read, is too large, ...).
    pub fn whole_file(file: &Path, message: &str) -> FileErrors {
        FileErrors {
            file: file.to_path_buf(),
            diagnostics: vec![Diagnostic {
                file: file.to_path_buf(),
                line: None,
                task: None,
                key: "file".into(),
                message: message.to_string(),
            }],
        }
    }
}

impl fmt::Display for FileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.diagnostics.len();
        write!(
            f,
            "{} has {n} error{}",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for d in &self.diagnostics {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

/// Maps byte offsets of a source text to 1-based line numbers.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(src: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    pub(crate) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset).max(1)
    }
}

/// Collects the diagnostics of one file as the loader walks it.
pub(crate) struct Sink<'a> {
    file: &'a Path,
    lines: LineIndex,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(file: &'a Path, src: &str) -> Self {
        Sink {
            file,
            lines: LineIndex::new(src),
            diagnostics: Vec::new(),
        }
    }

    /// Records a problem at `span` (a byte range of the source, if known).
    pub(crate) fn push(
        &mut self,
        span: Option<Range<usize>>,
        task: Option<&str>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.diagnostics.push(Diagnostic {
            file: self.file.to_path_buf(),
            line: span.map(|s| self.lines.line(s.start)),
            task: task.map(str::to_string),
            key: key.into(),
            message: message.into(),
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.diagnostics.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_lines() {
        let idx = LineIndex::new("a\nbb\n\nccc");
        assert_eq!(idx.line(0), 1);
        assert_eq!(idx.line(1), 1);
        assert_eq!(idx.line(2), 2);
        assert_eq!(idx.line(5), 3);
        assert_eq!(idx.line(6), 4);
        assert_eq!(idx.line(100), 4);
    }

    #[test]
    fn display_names_file_line_task_and_key() {
        let d = Diagnostic {
            file: "dags/x.toml".into(),
            line: Some(7),
            task: Some("train".into()),
            key: "tasks.train.retries".into(),
            message: "expected a whole number".into(),
        };
        assert_eq!(
            d.to_string(),
            "dags/x.toml:7: task `train`: `tasks.train.retries`: expected a whole number"
        );
    }
}
