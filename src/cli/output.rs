//! How the CLI prints: aligned tables for people, JSON for scripts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use comfy_table::{Table, presets};
use serde::Serialize;

/// A borderless table, like `kubectl get`. Cells come from files and databases (a CSV's
/// deployment ids, a task's error), so control characters other than line breaks are shown
/// escaped: an ESC sequence in a cell cannot restyle or rewrite the terminal.
pub fn table<H: ToString>(header: &[H], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    if !header.is_empty() {
        t.set_header(header.iter().map(ToString::to_string).collect::<Vec<_>>());
    }
    for row in rows {
        t.add_row(row.iter().map(|c| safe_cell(c)).collect::<Vec<_>>());
    }
    t.to_string()
        .lines()
        .map(|l| l.trim_end().strip_prefix(' ').unwrap_or(l.trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn safe_cell(text: &str) -> String {
    if !text.chars().any(|c| c.is_control() && c != '\n') {
        return text.to_string();
    }
    text.split('\n')
        .map(|line| crate::state::shown(line, usize::MAX))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

pub fn duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

pub fn span(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => duration((e - s).to_std().unwrap_or_default()),
        (Some(s), None) => format!(
            "{} so far",
            duration((Utc::now() - s).to_std().unwrap_or_default())
        ),
        _ => "-".into(),
    }
}

/// The first line of a possibly long message, for table cells.
pub fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    if line.chars().count() > 80 {
        format!("{}…", line.chars().take(79).collect::<String>())
    } else {
        line.to_string()
    }
}

/// An error in one line for a table: its first line and, when it goes on (a command's stderr
/// tail), its last non-empty line, where the reason usually is.
pub fn gist(s: &str) -> String {
    let first = first_line(s);
    let last = s.lines().skip(1).filter(|l| !l.trim().is_empty()).last();
    match last {
        Some(l) => {
            let l = l.trim();
            let l = if l.chars().count() > 100 {
                format!("{}…", l.chars().take(99).collect::<String>())
            } else {
                l.to_string()
            };
            format!("{} … {l}", first.trim_end_matches(':'))
        }
        None => first,
    }
}

/// `println!` that gives up quietly when stdout is closed (a reader like `head` went away),
/// for commands that keep running tasks after their reader is gone.
#[macro_export]
#[doc(hidden)]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[cfg(test)]
mod tests {
    #[test]
    fn cells_cannot_carry_terminal_escapes() {
        let t = super::table(&["A"], vec![vec!["\u{1b}[2Jwiped\rover".into()]]);
        assert!(!t.contains('\u{1b}') && !t.contains('\r'), "{t:?}");
        assert!(t.contains("\\u{1b}[2Jwiped\\rover"), "{t}");
    }
}
