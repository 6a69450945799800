//! When a schedule fires. Pure: every function takes the last tick and `now` as arguments, so
//! the daemon's timing is tested without sleeping.
//!
//! Ticks are evaluated in the DAG's time zone by croner, with classic cron behaviour across
//! daylight-saving changes: a local time that does not exist (02:30 on the spring-forward
//! day) fires once, at the next valid instant (03:00); a local time that happens twice (02:30
//! on the fall-back day) fires once, the first time. A schedule with a wildcard hour keeps its
//! interval instead: `0 * * * *` fires every real hour, twice at 02:00 local on the fall-back
//! day (Vixie cron's rule).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Which ticks a DAG may have: the window `[start, end]` and whether missed ones are run.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// The DAG's `start_date`, or when the scheduler first saw it. Ticks before it are not
    /// missed ticks.
    pub start: DateTime<Utc>,
    /// The DAG's `end_date`: no tick after it.
    pub end: Option<DateTime<Utc>>,
    /// Run every missed tick (oldest first), or only the most recent one.
    pub catchup: bool,
}

/// The first tick strictly after `after`.
pub fn next_after(cron: &croner::Cron, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The first tick at or after `t`. croner compares whole seconds, so its inclusive search can
/// return the second that `t` falls in, which is before `t`: that one does not count.
fn at_or_after(cron: &croner::Cron, tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let first = cron
        .find_next_occurrence(&t.with_timezone(&tz), true)
        .ok()
        .map(|x| x.with_timezone(&Utc))?;
    if first < t {
        next_after(cron, tz, first)
    } else {
        Some(first)
    }
}

/// The last tick strictly before `before` (a scheduled run's data interval starts there).
pub fn previous_before(
    cron: &croner::Cron,
    tz: Tz,
    before: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(&before.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The ticks that are due at `now` and have no run yet (every tick up to `last_tick` has one),
/// oldest first, at most `limit` of them. Without catch-up only the most recent is due.
pub fn due(
    cron: &croner::Cron,
    tz: Tz,
    window: &Window,
    last_tick: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<DateTime<Utc>> {
    let until = match window.end {
        Some(end) if end < now => end,
        _ => now,
    };
    let first = match last_tick {
        Some(last) => next_after(
            cron,
            tz,
            last.max(window.start - chrono::Duration::nanoseconds(1)),
        ),
        None => at_or_after(cron, tz, window.start),
    };
    let Some(first) = first.filter(|t| *t <= until) else {
        return Vec::new();
    };
    if !window.catchup {
        // Only the most recent missed tick: walk back from `until`.
        let latest = cron
            .find_previous_occurrence(&until.with_timezone(&tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t >= first)
            .unwrap_or(first);
        return if limit > 0 { vec![latest] } else { Vec::new() };
    }
    let mut ticks = Vec::new();
    let mut tick = Some(first);
    while let Some(t) = tick {
        if t > until || ticks.len() >= limit {
            break;
        }
        ticks.push(t);
        tick = next_after(cron, tz, t);
    }
    ticks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::parse_cron;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn tz(name: &str) -> Tz {
        name.parse().unwrap()
    }

    /// The next `n` ticks after `from`, in UTC.
    fn ticks(expr: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
        let cron = parse_cron(expr).unwrap();
        let mut t = utc(from);
        (0..n)
            .map(|_| {
                t = next_after(&cron, tz(zone), t).unwrap();
                t.to_rfc3339()
            })
            .collect()
    }

    #[test]
    fn ticks_across_time_zones_and_daylight_saving_changes() {
        #[rustfmt::skip]
        let table: &[(&str, &str, &str, &[&str])] = &[
            // Plain UTC schedules.
            ("@hourly", "UTC", "2026-11-22T14:20:00Z",
             &["2026-11-22T15:00:00+00:00", "2026-11-22T16:00:00+00:00"]),
            ("*/15 * * * * *", "UTC", "2026-11-22T14:00:01Z",
             &["2026-11-22T14:00:15+00:00", "2026-11-22T14:00:30+00:00"]),
            ("0 0 L * *", "UTC", "2026-02-01T00:00:00Z",
             &["2026-02-28T00:00:00+00:00", "2026-03-31T00:00:00+00:00"]),
            // Europe/Berlin springs forward on 2027-03-28 at 02:00 -> 03:00. 03:00 exists: it
            // fires once, at 01:00 UTC, and at the same local time the next day (not an hour
            // late, the tokio-cron-scheduler bug).
            ("0 3 * * *", "Europe/Berlin", "2027-03-27T12:00:00Z",
             &["2027-03-28T01:00:00+00:00", "2027-03-29T01:00:00+00:00"]),
            // 02:30 does not exist that day: it fires once at the next valid instant, 03:00.
            ("30 2 * * *", "Europe/Berlin", "2027-03-27T12:00:00Z",
             &["2027-03-28T01:00:00+00:00", "2027-03-29T00:30:00+00:00"]),
            // Europe/Berlin falls back on 2026-10-25 at 03:00 -> 02:00: 02:30 happens twice
            // and fires once, the first time (CEST).
            ("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z",
             &["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]),
            // A wildcard hour keeps its interval through the repeated hour: every real hour,
            // 02:00 CEST, 02:00 CET, 03:00 CET.
            ("0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z",
             &["2026-10-25T00:00:00+00:00", "2026-10-25T01:00:00+00:00", "2026-10-25T02:00:00+00:00"]),
            // America/New_York springs forward on 2027-03-14 at 02:00 -> 03:00.
            ("30 2 * * *", "America/New_York", "2027-03-13T12:00:00Z",
             &["2027-03-14T07:00:00+00:00", "2027-03-15T06:30:00+00:00"]),
        ];
        for (expr, zone, from, expected) in table {
            assert_eq!(
                ticks(expr, zone, from, expected.len()),
                *expected,
                "{expr} in {zone} after {from}"
            );
        }
    }

    fn window(start: &str, catchup: bool) -> Window {
        Window {
            start: utc(start),
            end: None,
            catchup,
        }
    }

    #[test]
    fn missed_ticks_after_downtime_with_and_without_catchup() {
        let cron = parse_cron("@hourly").unwrap();
        let last = Some(utc("2026-11-22T10:00:00Z"));
        let now = utc("2026-11-22T14:30:00Z");
        let with = due(
            &cron,
            chrono_tz::UTC,
            &window("2026-11-01T00:00:00Z", true),
            last,
            now,
            100,
        );
        let shown: Vec<String> = with.iter().map(|t| t.format("%H:%M").to_string()).collect();
        assert_eq!(shown, ["11:00", "12:00", "13:00", "14:00"], "oldest first");
        let limited = due(
            &cron,
            chrono_tz::UTC,
            &window("2026-11-01T00:00:00Z", true),
            last,
            now,
            2,
        );
        assert_eq!(limited.len(), 2, "bounded by the caller's limit");
        let without = due(
            &cron,
            chrono_tz::UTC,
            &window("2026-11-01T00:00:00Z", false),
            last,
            now,
            100,
        );
        assert_eq!(
            without,
            [utc("2026-11-22T14:00:00Z")],
            "only the most recent"
        );
        let none = due(
            &cron,
            chrono_tz::UTC,
            &window("2026-11-01T00:00:00Z", false),
            Some(utc("2026-11-22T14:00:00Z")),
            now,
            100,
        );
        assert!(none.is_empty(), "nothing new since the last tick");
    }

    #[test]
    fn a_new_dag_starts_at_its_window_and_stops_at_its_end() {
        let cron = parse_cron("0 6 * * *").unwrap();
        let now = utc("2026-11-22T12:00:00Z");
        // First seen today at 08:00: today's 06:00 was before it, so nothing is due yet.
        assert!(
            due(
                &cron,
                chrono_tz::UTC,
                &window("2026-11-22T08:00:00Z", true),
                None,
                now,
                10
            )
            .is_empty()
        );
        // A start_date three days back, with catch-up: one run per day since, oldest first.
        let back = due(
            &cron,
            chrono_tz::UTC,
            &window("2026-11-19T00:00:00Z", true),
            None,
            now,
            10,
        );
        assert_eq!(back.len(), 4);
        assert_eq!(back[0], utc("2026-11-19T06:00:00Z"));
        // A tick exactly at the start counts.
        assert_eq!(
            due(
                &cron,
                chrono_tz::UTC,
                &window("2026-11-22T06:00:00Z", true),
                None,
                now,
                10
            ),
            [utc("2026-11-22T06:00:00Z")]
        );
        // An end date in the past: no tick after it.
        let ended = Window {
            start: utc("2026-11-19T00:00:00Z"),
            end: Some(utc("2026-11-20T00:00:00Z")),
            catchup: true,
        };
        assert_eq!(
            due(&cron, chrono_tz::UTC, &ended, None, now, 10),
            [utc("2026-11-19T06:00:00Z")]
        );
    }

    #[test]
    fn a_tick_before_the_window_start_is_not_due_even_within_the_same_second() {
        let cron = parse_cron("* * * * * *").unwrap();
        let start = utc("2026-11-22T12:00:00.734Z");
        let w = window("2026-11-22T12:00:00.734Z", true);
        assert!(due(&cron, chrono_tz::UTC, &w, None, start, 10).is_empty());
        assert_eq!(
            due(
                &cron,
                chrono_tz::UTC,
                &w,
                None,
                utc("2026-11-22T12:00:01.2Z"),
                10
            ),
            [utc("2026-11-22T12:00:01Z")]
        );
    }

    #[test]
    fn the_previous_tick_opens_the_data_interval() {
        let cron = parse_cron("@daily").unwrap();
        assert_eq!(
            previous_before(&cron, chrono_tz::UTC, utc("2026-11-22T00:00:00Z")),
            Some(utc("2026-11-21T00:00:00Z"))
        );
    }
}
