//! `dags next`: vigil's fire times checked against an independent cron library (the `cron`
//! crate) on a table of expressions and time zones, over windows that cross daylight-saving
//! changes; and the command through the real binary.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::util::{Engine, Project};

/// `cron`'s next `n` ticks after `after` for a 6-field expression in `tz`.
fn independent(expr6: &str, tz: Tz, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let schedule = cron::Schedule::from_str(expr6).unwrap();
    schedule
        .after(&after.with_timezone(&tz))
        .take(n)
        .map(|t| t.with_timezone(&Utc))
        .collect()
}

async fn vigil_next(
    e: &Engine,
    expr: &str,
    tz: &str,
    after: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    let dag = e.dag(&format!(
        "schedule = \"{expr}\"\ntimezone = \"{tz}\"\n[tasks.a]\ntype = \"noop\"\n"
    ));
    vigil::ops::dags::next_runs(&dag, after, n)
        .into_iter()
        .map(|f| f.logical_date)
        .collect()
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

#[tokio::test]
async fn fire_times_match_an_independent_cron_library_across_zones_and_dst_days() {
    let e = Engine::new().await;
    // Days before the 2026 changes: Europe 29 March / 25 October, US 8 March / 1 November.
    let windows = [
        utc(2026, 3, 27, 0, 0),
        utc(2026, 10, 23, 0, 0),
        utc(2026, 3, 6, 0, 0),
        utc(2026, 10, 30, 0, 0),
        utc(2026, 12, 30, 0, 0),
    ];
    // (vigil's 5-field expression, the same with seconds for `cron`). Times that fall in a
    // daylight-saving gap or overlap are in the next test: the two libraries differ there.
    let expressions = [
        ("*/15 * * * *", "0 */15 * * * *"),
        ("0 6 * * *", "0 0 6 * * *"),
        ("30 9 * * 1-5", "0 30 9 * * Mon-Fri"),
        ("0 12 1 * *", "0 0 12 1 * *"),
        ("45 23 * * 0", "0 45 23 * * Sun"),
        ("0 0 * * *", "0 0 0 * * *"),
    ];
    let zones = [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Asia/Kolkata",
        "Australia/Sydney",
    ];
    let mut compared = 0;
    for (ours, theirs) in expressions {
        for zone in zones {
            let tz: Tz = zone.parse().unwrap();
            for after in windows {
                let n = 12;
                let got = vigil_next(&e, ours, zone, after, n).await;
                let want = independent(theirs, tz, after, n);
                assert_eq!(got, want, "`{ours}` in {zone} after {after}");
                compared += n;
            }
        }
    }
    assert_eq!(compared, 6 * 5 * 5 * 12);
}

/// Where a local time does not exist or happens twice, vigil follows classic cron (documented
/// in `schedule/cron.rs` and docs/dags.md): a fixed time in the spring-forward gap fires once
/// at the next valid instant, a fixed time in the fall-back overlap fires once (the first),
/// and a wildcard-hour schedule keeps its real-time interval.
#[tokio::test]
async fn daylight_saving_days_follow_classic_cron() {
    let e = Engine::new().await;
    // Berlin springs forward at 02:00 → 03:00 on 29 March 2026: 02:30 does not exist.
    let got = vigil_next(
        &e,
        "30 2 * * *",
        "Europe/Berlin",
        utc(2026, 3, 27, 12, 0),
        3,
    )
    .await;
    assert_eq!(
        got,
        [
            utc(2026, 3, 28, 1, 30), // 02:30 CET
            utc(2026, 3, 29, 1, 0),  // 03:00 CEST, the next valid instant
            utc(2026, 3, 30, 0, 30), // 02:30 CEST
        ]
    );
    // Berlin falls back 03:00 → 02:00 on 25 October 2026: 02:30 happens twice, fires once.
    let got = vigil_next(
        &e,
        "30 2 * * *",
        "Europe/Berlin",
        utc(2026, 10, 24, 12, 0),
        2,
    )
    .await;
    assert_eq!(got, [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]);
    // Hourly keeps firing every real hour through the overlap.
    let got = vigil_next(
        &e,
        "0 * * * *",
        "Europe/Berlin",
        utc(2026, 10, 24, 23, 30),
        4,
    )
    .await;
    assert_eq!(
        got,
        [
            utc(2026, 10, 25, 0, 0),
            utc(2026, 10, 25, 1, 0),
            utc(2026, 10, 25, 2, 0),
            utc(2026, 10, 25, 3, 0)
        ]
    );
}

#[test]
fn dags_next_prints_fire_times_with_their_data_intervals() {
    let p = Project::new();
    p.write(
        "dags/nightly.toml",
        "schedule = \"0 3 * * *\"\ntimezone = \"Europe/Berlin\"\n[tasks.a]\ntype = \"noop\"\n",
    );
    p.write("dags/manual.toml", "[tasks.a]\ntype = \"noop\"\n");
    let times = p
        .vigil(&["dags", "next", "nightly", "-n", "3", "--json"])
        .expect(0)
        .json();
    let times = times.as_array().unwrap();
    assert_eq!(times.len(), 3);
    for pair in times.windows(2) {
        // Each run's data interval starts where the previous run's ends.
        assert_eq!(pair[1]["data_interval_start"], pair[0]["data_interval_end"]);
        assert_eq!(pair[0]["logical_date"], pair[0]["data_interval_end"]);
    }
    for t in times {
        let local = t["local"].as_str().unwrap();
        assert!(local.contains("T03:00:00+0"), "{local}");
    }
    let text = p.vigil(&["dags", "next", "nightly"]).expect(0).stdout();
    assert!(text.contains("`0 3 * * *` in Europe/Berlin"), "{text}");
    assert_eq!(text.matches("T03:00:00+0").count(), 5, "{text}");
    let manual = p.vigil(&["dags", "next", "manual"]).expect(0).stdout();
    assert!(manual.contains("manual has no schedule"), "{manual}");
    p.vigil(&["dags", "next", "nightly", "-n", "0"]).expect(2);

    // `dags list` shows the next run and the latest runs' states; `dags show` the next run.
    p.vigil(&["dags", "test", "manual"]).expect(0);
    let list = p.vigil(&["dags", "list", "--json"]).expect(0).json();
    let by_id = |id: &str| {
        list["dags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("manual")["last_runs"], serde_json::json!(["success"]));
    assert!(by_id("manual")["next_run"].is_null());
    assert_eq!(by_id("nightly")["next_run"], times[0]["logical_date"]);
    let table = p.vigil(&["dags", "list"]).expect(0).stdout();
    assert!(
        table.contains("NEXT RUN") && table.contains("LAST RUNS"),
        "{table}"
    );
    let show = p.vigil(&["dags", "show", "nightly"]).expect(0).stdout();
    assert!(
        show.contains("next run   ") && show.contains("T03:00:00+0"),
        "{show}"
    );
}
