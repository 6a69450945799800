//! What a message says. Every message has a one-line subject people can triage from a phone,
//! a plain-text body, an HTML alternative, and the structured event for webhooks. Bodies
//! are minijinja templates (HTML ones auto-escaped), kept in `templates/` beside this file.
//!
//! Anything that reaches a header (task ids, model names, versions, error text) goes through
//! [`sanitize_header`]: a CR or LF there would let task output add headers of its own.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use minijinja::value::Serde;
use minijinja::{Environment, Value, context};

use crate::state::{Audience, LogLine};
use crate::store::Notification;

/// How many log lines of the failed attempt a message carries.
pub const LOG_TAIL: usize = 30;

/// Longest subject kept; mail clients cut long ones anyway.
const SUBJECT_MAX: usize = 200;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("task.txt", include_str!("templates/task.txt")),
        ("task.html", include_str!("templates/task.html")),
        ("run.txt", include_str!("templates/run.txt")),
        ("run.html", include_str!("templates/run.html")),
        ("model.txt", include_str!("templates/model.txt")),
        ("model.html", include_str!("templates/model.html")),
    ] {
        // The templates are compiled into the binary and covered by tests; a broken one
        // shows up in `render` as a readable line rather than a panic.
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "message template does not compile");
        }
    }
    env
});

fn render(name: &str, ctx: &Value) -> String {
    TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| format!("(the message template {name} failed: {e})\n{ctx}"))
}

/// One line: control characters (CR and LF above all) become spaces, runs of spaces
/// collapse, and the result is cut to a length mail clients show.
pub fn sanitize_header(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(SUBJECT_MAX));
    for c in s.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if out.chars().count() >= SUBJECT_MAX {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out.trim_end().to_string()
}

/// `2026-11-22 14:00 UTC`: how dates appear in subjects and bodies.
pub fn human_date(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The web page of a run: the API serves this address (`api::web`) by sending the browser to
/// the page's view of the run. Fixed, so links in mail already sent keep working.
pub fn run_link(base_url: &str, dag_id: &str, run_id: i64) -> String {
    format!(
        "{}/dags/{dag_id}/runs/{run_id}",
        base_url.trim_end_matches('/')
    )
}

/// The last [`LOG_TAIL`] lines of an attempt's log, one string per line.
pub fn log_tail(logs: &[LogLine]) -> Vec<String> {
    let mut lines: Vec<String> = logs
        .iter()
        .flat_map(|l| {
            let prefix = format!("{} {:<5}", l.ts.format("%H:%M:%S"), l.level.as_str());
            l.message
                .lines()
                .map(move |m| format!("{prefix} {}", m.chars().take(500).collect::<String>()))
                .collect::<Vec<_>>()
        })
        .collect();
    let skip = lines.len().saturating_sub(LOG_TAIL);
    lines.drain(..skip);
    lines
}

/// A task attempt that failed: for good (`next_attempt` is `None`) or up for retry.
#[derive(Debug, Clone)]
pub struct TaskFailure<'a> {
    pub dag_id: &'a str,
    pub task_id: &'a str,
    pub run_id: i64,
    pub logical_date: DateTime<Utc>,
    pub attempt: u32,
    pub max_attempts: u32,
    pub error: &'a str,
    pub next_attempt: Option<DateTime<Utc>>,
    pub logs: &'a [LogLine],
    pub base_url: &'a str,
}

pub fn task_failure(e: &TaskFailure<'_>, to: Audience) -> Notification {
    let retry = e.next_attempt.is_some();
    let date = human_date(e.logical_date);
    let subject = if retry {
        format!(
            "[vigil] RETRY {}.{} attempt {} of {} ({date})",
            e.dag_id, e.task_id, e.attempt, e.max_attempts
        )
    } else {
        format!("[vigil] FAILED {}.{} ({date})", e.dag_id, e.task_id)
    };
    let headline = if retry {
        format!(
            "Task {}.{} failed attempt {} and will be retried",
            e.dag_id, e.task_id, e.attempt
        )
    } else {
        format!("Task {}.{} failed", e.dag_id, e.task_id)
    };
    let link = run_link(e.base_url, e.dag_id, e.run_id);
    let log = log_tail(e.logs);
    let retries_left = e.max_attempts.saturating_sub(e.attempt);
    let ctx = context! {
        headline, color => if retry { "#b06000" } else { "#b00020" },
        dag_id => e.dag_id, task_id => e.task_id, run_id => e.run_id,
        logical_date => &date, attempt => e.attempt, max_attempts => e.max_attempts,
        retries_left, next_attempt => e.next_attempt.map(human_date),
        error => e.error, log => &log, link => &link,
    };
    Notification {
        kind: if retry { "task_retry" } else { "task_failed" }.into(),
        subject: sanitize_header(&subject),
        body: render("task.txt", &ctx),
        html: Some(render("task.html", &ctx)),
        payload: serde_json::json!({
            "event": if retry { "task_retry" } else { "task_failed" },
            "dag_id": e.dag_id,
            "task_id": e.task_id,
            "run_id": e.run_id,
            "logical_date": e.logical_date,
            "attempt": e.attempt,
            "max_attempts": e.max_attempts,
            "retries_left": retries_left,
            "next_attempt_at": e.next_attempt,
            "error": e.error,
            "log_tail": log,
            "url": link,
        }),
        to,
    }
}

/// A task that made its run fail, for the run's message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailedTask {
    pub task_id: String,
    pub state: String,
    pub error: Option<String>,
}

/// A run that ended `failed`.
#[derive(Debug, Clone)]
pub struct RunFailure<'a> {
    pub dag_id: &'a str,
    pub run_id: i64,
    pub logical_date: DateTime<Utc>,
    pub failed: Vec<FailedTask>,
    /// Why, when no task explains it (the run could not start).
    pub reason: Option<&'a str>,
    pub base_url: &'a str,
}

pub fn run_failure(e: &RunFailure<'_>, to: Audience) -> Notification {
    let date = human_date(e.logical_date);
    let link = run_link(e.base_url, e.dag_id, e.run_id);
    let headline = format!("Run {} of DAG {} failed", e.run_id, e.dag_id);
    let ctx = context! {
        headline, dag_id => e.dag_id, run_id => e.run_id, logical_date => &date,
        failed => Value::from(Serde(&e.failed)), reason => e.reason, link => &link,
    };
    Notification {
        kind: "run_failed".into(),
        subject: sanitize_header(&format!(
            "[vigil] RUN FAILED {} run {} ({date})",
            e.dag_id, e.run_id
        )),
        body: render("run.txt", &ctx),
        html: Some(render("run.html", &ctx)),
        payload: serde_json::json!({
            "event": "run_failed",
            "dag_id": e.dag_id,
            "run_id": e.run_id,
            "logical_date": e.logical_date,
            "failed_tasks": e.failed,
            "reason": e.reason,
            "url": link,
        }),
        to,
    }
}

/// Something that happened to a model: a verdict, a rollback, a refused promotion.
#[derive(Debug, Clone)]
pub struct ModelEvent<'a> {
    /// `DEGRADED`, `INCONCLUSIVE`, `ROLLBACK`, `PROMOTION REFUSED`.
    pub headline: &'a str,
    pub model: &'a str,
    /// The subject after `[vigil] `.
    pub subject: String,
    /// One or two sentences for people.
    pub summary: String,
    /// `(label, version)` rows: production, baseline, candidate, rolled back to…
    pub versions: Vec<(&'a str, String)>,
    /// The serialized `Judgement`, when the event rests on one.
    pub judgement: Option<serde_json::Value>,
    /// What vigil did or will do about it.
    pub action: String,
    /// The structured event for webhooks.
    pub details: serde_json::Value,
}

pub fn model_event(e: &ModelEvent<'_>, to: Audience) -> Notification {
    let versions: Vec<(String, String, String)> = e
        .versions
        .iter()
        .map(|(label, v)| {
            (
                label.to_string(),
                v.clone(),
                format!("{:<15}", format!("{label}:")),
            )
        })
        .collect();
    let color = match e.headline {
        "INCONCLUSIVE" | "PROMOTION REFUSED" => "#b06000",
        _ => "#b00020",
    };
    let ctx = context! {
        headline => format!("{} {}", e.headline, e.model), color, model => e.model,
        versions, summary => &e.summary, j => Value::from(Serde(&e.judgement)), action => &e.action,
    };
    Notification {
        kind: "model_alert".into(),
        subject: sanitize_header(&format!("[vigil] {}", e.subject)),
        body: render("model.txt", &ctx),
        html: Some(render("model.html", &ctx)),
        payload: serde_json::json!({
            "event": "model_alert",
            "alert": e.headline,
            "model": e.model,
            "summary": e.summary,
            "action": e.action,
            "details": e.details,
        }),
        to,
    }
}

/// `vigil notify test`: proves the SMTP settings work.
pub fn test_message(to: Audience, host: &str) -> Notification {
    let body = format!(
        "This is a test message from vigil on {host}.\n\nIf you can read it, vigil's [smtp] settings work.\n"
    );
    Notification {
        kind: "test".into(),
        subject: "[vigil] test message".into(),
        html: Some(format!(
            "<!doctype html><html><body><p>{}</p></body></html>",
            // Escape each paragraph, then join: escaping after joining escaped the joins.
            body.trim()
                .split("\n\n")
                .map(|p| minijinja::HtmlEscape(p).to_string())
                .collect::<Vec<_>>()
                .join("</p><p>")
        )),
        body,
        payload: serde_json::json!({"event": "test"}),
        to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::LogLevel;

    #[test]
    fn the_test_message_html_has_paragraphs_and_escapes_only_the_text() {
        let n = test_message(Audience::default(), "<host>");
        let html = n.html.unwrap();
        assert!(html.contains("</p><p>"), "{html}");
        assert!(!html.contains("&lt;/p&gt;"), "{html}");
        assert!(html.contains("&lt;host&gt;"), "{html}");
    }

    fn line(msg: &str) -> LogLine {
        LogLine {
            ts: DateTime::parse_from_rfc3339("2026-11-22T14:00:05Z")
                .unwrap()
                .to_utc(),
            level: LogLevel::Info,
            message: msg.into(),
        }
    }

    #[test]
    fn headers_lose_line_breaks_and_control_characters() {
        assert_eq!(
            sanitize_header("FAILED x\r\nBcc: victim@example.com\t\u{7}end"),
            "FAILED x Bcc: victim@example.com end"
        );
        let long = "a".repeat(500);
        assert_eq!(sanitize_header(&long).chars().count(), SUBJECT_MAX + 1);
    }

    #[test]
    fn a_final_failure_says_what_where_and_how_to_look() {
        let logs: Vec<LogLine> = (1..=40).map(|i| line(&format!("step {i}"))).collect();
        let n = task_failure(
            &TaskFailure {
                dag_id: "model_performance_monitoring",
                task_id: "check_performance",
                run_id: 42,
                logical_date: DateTime::parse_from_rfc3339("2026-11-22T14:00:00Z")
                    .unwrap()
                    .to_utc(),
                attempt: 3,
                max_attempts: 3,
                error: "model m has no production version\n<script>",
                next_attempt: None,
                logs: &logs,
                base_url: "https://vigil.example.com/",
            },
            Audience::default(),
        );
        assert_eq!(
            n.subject,
            "[vigil] FAILED model_performance_monitoring.check_performance (2026-11-22 14:00 UTC)"
        );
        for want in [
            "DAG:           model_performance_monitoring",
            "Task:          check_performance",
            "Run:           42",
            "Logical date:  2026-11-22 14:00 UTC",
            "Attempt:       3 of 3 (0 retries left)",
            "  model m has no production version",
            "Last 30 log lines of attempt 3:",
            "14:00:05 info  step 40",
            "Run: https://vigil.example.com/dags/model_performance_monitoring/runs/42",
        ] {
            assert!(n.body.contains(want), "missing {want:?} in:\n{}", n.body);
        }
        assert!(!n.body.contains("step 10\n"), "only the last 30 lines");
        assert!(n.body.contains("step 11\n"));
        let html = n.html.unwrap();
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert_eq!(n.payload["retries_left"], 0);
        assert_eq!(n.payload["log_tail"].as_array().unwrap().len(), 30);
    }

    #[test]
    fn a_retry_says_when_the_next_attempt_is() {
        let n = task_failure(
            &TaskFailure {
                dag_id: "d",
                task_id: "t",
                run_id: 1,
                logical_date: Utc::now(),
                attempt: 1,
                max_attempts: 3,
                error: "boom",
                next_attempt: Some(
                    DateTime::parse_from_rfc3339("2026-11-22T14:05:00Z")
                        .unwrap()
                        .to_utc(),
                ),
                logs: &[],
                base_url: "http://localhost:8080",
            },
            Audience::default(),
        );
        assert!(n.subject.starts_with("[vigil] RETRY d.t attempt 1 of 3 ("));
        assert!(n.body.contains("(2 retries left)"), "{}", n.body);
        assert!(n.body.contains("Next attempt:  2026-11-22 14:05 UTC"));
        assert!(n.body.contains("The attempt logged nothing."));
        assert_eq!(n.kind, "task_retry");
    }

    #[test]
    fn a_model_alert_carries_the_verdict_details() {
        let j = serde_json::json!({
            "verdict": "DEGRADED", "metric": "rmse", "test": "paired_t", "n": 200,
            "baseline_value": 1.0, "candidate_value": 1.5, "estimate": 0.5,
            "interval": [0.4, 0.6], "p_value": 0.0001, "floor": 0.05,
        });
        let n = model_event(
            &ModelEvent {
                headline: "DEGRADED",
                model: "m",
                subject: "DEGRADED m (production v2)".into(),
                summary: "v2 is worse than v1".into(),
                versions: vec![("production", "v2".into()), ("baseline", "v1".into())],
                judgement: Some(j),
                action: "automatic rollback is off".into(),
                details: serde_json::json!({}),
            },
            Audience::default(),
        );
        for want in [
            "Model:         m",
            "production:    v2",
            "baseline:      v1",
            "Metric:        rmse (paired_t)",
            "Rows (n):      200",
            "Estimate:      0.5 worse",
            "Interval:      [0.4, 0.6]",
            "Action:        automatic rollback is off",
        ] {
            assert!(n.body.contains(want), "missing {want:?} in:\n{}", n.body);
        }
        assert!(n.html.unwrap().contains("<td>rmse (paired_t)</td>"));
    }
}
