//! Tests of [`super::Schedule`]: the accepted forms, errors, fire times,
//! time zones and daylight saving time.

#![allow(clippy::unwrap_used)] // a failure here is a test failure

use super::*;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// Milliseconds of a UTC date and time.
fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .unwrap()
        .timestamp_millis()
}

fn next_n(s: &Schedule, mut t: i64, n: usize) -> Vec<i64> {
    (0..n)
        .map(|_| {
            t = s.next_after(t).unwrap();
            t
        })
        .collect()
}

#[test]
fn five_fields_nicknames_and_seconds() {
    let t0 = utc(2025, 1, 1, 0, 0) + 1; // just after midnight, Wednesday
    let cases = [
        ("0 3 * * *", utc(2025, 1, 1, 3, 0)),
        ("  0 3 * * *  ", utc(2025, 1, 1, 3, 0)),
        ("*/15 * * * *", utc(2025, 1, 1, 0, 15)),
        ("0 9 * * MON-FRI", utc(2025, 1, 1, 9, 0)),
        ("0 0 1 * *", utc(2025, 2, 1, 0, 0)),
        ("@hourly", utc(2025, 1, 1, 1, 0)),
        ("@daily", utc(2025, 1, 2, 0, 0)),
        ("@midnight", utc(2025, 1, 2, 0, 0)),
        ("@weekly", utc(2025, 1, 5, 0, 0)), // Sunday
        ("@monthly", utc(2025, 2, 1, 0, 0)),
        ("@yearly", utc(2026, 1, 1, 0, 0)),
        ("@ANNUALLY", utc(2026, 1, 1, 0, 0)),
        ("0 0 L * *", utc(2025, 1, 31, 0, 0)),
        ("0 0 * * 5#2", utc(2025, 1, 10, 0, 0)), // second Friday
        ("*/10 * * * * *", utc(2025, 1, 1, 0, 0) + 10_000),
    ];
    for (expr, expected) in cases {
        let s = Schedule::parse(expr, None).unwrap();
        assert_eq!(s.next_after(t0), Some(expected), "{expr}");
        assert_eq!(s.time_zone(), TimeZone::UTC);
    }
    assert!(
        Schedule::parse("*/10 * * * * *", None)
            .unwrap()
            .has_seconds()
    );
    assert!(!Schedule::parse("@daily", None).unwrap().has_seconds());
    assert_eq!(Schedule::parse(" @daily ", None).unwrap().expr(), "@daily");
}

#[test]
fn next_is_strictly_after_and_latest_is_at_or_before() {
    let s = Schedule::parse("0 3 * * *", None).unwrap();
    let three = utc(2025, 6, 1, 3, 0);
    assert_eq!(s.next_after(three - 1), Some(three));
    assert_eq!(s.next_after(three), Some(three + DAY));
    assert_eq!(s.next_after(three + 999), Some(three + DAY));
    assert_eq!(s.latest_at_or_before(three), Some(three));
    assert_eq!(s.latest_at_or_before(three + 999), Some(three));
    assert_eq!(s.latest_at_or_before(three - 1), Some(three - DAY));
    let every_second = Schedule::parse("* * * * * *", None).unwrap();
    assert_eq!(every_second.next_after(1_500), Some(2_000));
    assert_eq!(every_second.latest_at_or_before(1_500), Some(1_000));
}

#[test]
fn time_zones_move_the_wall_clock() {
    let s = Schedule::parse("0 3 * * *", Some("America/New_York")).unwrap();
    assert_eq!(s.time_zone().name(), "America/New_York");
    // 03:00 EST is 08:00 UTC in winter, 03:00 EDT is 07:00 UTC in summer.
    assert_eq!(
        s.next_after(utc(2025, 1, 1, 0, 0)),
        Some(utc(2025, 1, 1, 8, 0))
    );
    assert_eq!(
        s.next_after(utc(2025, 7, 1, 0, 0)),
        Some(utc(2025, 7, 1, 7, 0))
    );
    assert_eq!(s.to_string(), "`0 3 * * *` (America/New_York)");
    let tokyo = TimeZone::parse("Asia/Tokyo").unwrap();
    let s = Schedule::parse_in("@daily", tokyo).unwrap();
    assert_eq!(
        s.next_after(utc(2025, 1, 1, 12, 0)),
        Some(utc(2025, 1, 1, 15, 0))
    );
}

#[test]
fn spring_forward_in_berlin() {
    // 2025-03-30: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:xx does not exist.
    let berlin = Some("Europe/Berlin");
    let fixed = Schedule::parse("30 2 * * *", berlin).unwrap();
    assert_eq!(
        next_n(&fixed, utc(2025, 3, 28, 12, 0), 3),
        [
            utc(2025, 3, 29, 1, 30), // 02:30 CET
            utc(2025, 3, 30, 1, 0),  // the first instant after the gap, 03:00 CEST
            utc(2025, 3, 31, 0, 30), // 02:30 CEST
        ]
    );
    // The backward search agrees: due at 03:05 CEST is the moved run.
    assert_eq!(
        fixed.latest_at_or_before(utc(2025, 3, 30, 1, 5)),
        Some(utc(2025, 3, 30, 1, 0))
    );
    // An interval entry has no runs in the skipped hour.
    let half_hourly = Schedule::parse("*/30 * * * *", berlin).unwrap();
    assert_eq!(
        next_n(&half_hourly, utc(2025, 3, 30, 0, 15), 3),
        [
            utc(2025, 3, 30, 0, 30),
            utc(2025, 3, 30, 1, 0),
            utc(2025, 3, 30, 1, 30)
        ]
    );
    // An entry before the gap runs once, not also after it.
    let midnight = Schedule::parse("0 0 * * *", berlin).unwrap();
    assert_eq!(
        next_n(&midnight, utc(2025, 3, 29, 12, 0), 2),
        [utc(2025, 3, 29, 23, 0), utc(2025, 3, 30, 22, 0)]
    );
}

#[test]
fn fall_back_in_berlin() {
    // 2025-10-26: 03:00 CEST goes back to 02:00 CET (01:00 UTC); 02:xx happens twice.
    let berlin = Some("Europe/Berlin");
    let fixed = Schedule::parse("30 2 * * *", berlin).unwrap();
    assert_eq!(
        next_n(&fixed, utc(2025, 10, 25, 12, 0), 2),
        [utc(2025, 10, 26, 0, 30), utc(2025, 10, 27, 1, 30)],
        "a fixed-time entry runs once, in the first pass"
    );
    assert_eq!(
        fixed.latest_at_or_before(utc(2025, 10, 26, 1, 45)),
        Some(utc(2025, 10, 26, 0, 30)),
        "in the second pass, the run due is still the first pass's"
    );
    let hourly = Schedule::parse("@hourly", berlin).unwrap();
    assert_eq!(
        next_n(&hourly, utc(2025, 10, 25, 23, 30), 4),
        [
            utc(2025, 10, 26, 0, 0), // 02:00 CEST
            utc(2025, 10, 26, 1, 0), // 02:00 CET
            utc(2025, 10, 26, 2, 0), // 03:00 CET
            utc(2025, 10, 26, 3, 0),
        ],
        "an interval entry runs every real hour"
    );
}

#[test]
fn next_and_latest_agree_across_dst_days() {
    // No fire time lies strictly between latest_at_or_before(t) and
    // next_after(t), and each is a fire time of the other's search.
    let zones = [
        None,
        Some("Europe/Berlin"),
        Some("America/New_York"),
        Some("Australia/Lord_Howe"),
    ];
    let exprs = [
        "30 2 * * *",
        "*/20 * * * *",
        "@hourly",
        "0 0 * * *",
        "15 1,2,3 * * *",
    ];
    let spans = [
        utc(2025, 3, 29, 0, 0),
        utc(2025, 10, 25, 0, 0),
        utc(2025, 4, 5, 0, 0),
        utc(2025, 11, 1, 0, 0),
    ];
    for tz in zones {
        for expr in exprs {
            let s = Schedule::parse(expr, tz).unwrap();
            for start in spans {
                let mut t = start;
                while t < start + 3 * DAY {
                    let prev = s.latest_at_or_before(t).unwrap();
                    let next = s.next_after(t).unwrap();
                    assert!(prev <= t && t < next, "{expr} {tz:?} at {t}");
                    assert_eq!(s.next_after(prev), Some(next), "{expr} {tz:?} at {t}");
                    assert_eq!(
                        s.latest_at_or_before(next),
                        Some(next),
                        "{expr} {tz:?} at {t}"
                    );
                    t += 7 * MIN + 13_000;
                }
            }
        }
    }
}

#[test]
fn errors_say_what_is_wrong_and_what_to_do() {
    let cases = [
        (
            "",
            "the cron schedule is empty; write five fields (minute hour day-of-month month day-of-week), e.g. `0 3 * * *` for 03:00 every day, six with seconds first, or `@daily`",
        ),
        (
            "0 3 * *",
            "the cron schedule `0 3 * *` has 4 fields; write five fields (minute hour day-of-month month day-of-week), e.g. `0 3 * * *` for 03:00 every day, six with seconds first, or `@daily`",
        ),
        (
            "0 0 3 1 1 * 2030",
            "the cron schedule `0 0 3 1 1 * 2030` has 7 fields; write five fields (minute hour day-of-month month day-of-week), e.g. `0 3 * * *` for 03:00 every day, six with seconds first, or `@daily`",
        ),
        (
            "@reboot",
            "`@reboot` is not a schedule wharf knows; use `@hourly`, `@daily`, `@weekly`, `@monthly` or `@yearly`, or five fields such as `0 3 * * *`",
        ),
        (
            "0 24 * * *",
            "invalid cron schedule `0 24 * * *`: the hour field `24` is invalid (number out of bounds); the hour field takes 0-23, lists (`,`), ranges (`-`) and steps (`*/n`)",
        ),
        (
            "*/0 * * * *",
            "invalid cron schedule `*/0 * * * *`: the minute field `*/0` is invalid (step cannot be zero); the minute field takes 0-59, lists (`,`), ranges (`-`) and steps (`*/n`)",
        ),
        (
            "0 0 * 13 *",
            "invalid cron schedule `0 0 * 13 *`: the month field `13` is invalid (number out of bounds); the month field takes 1-12 or JAN-DEC, lists (`,`), ranges (`-`) and steps (`*/n`)",
        ),
        (
            "60 0 0 * * *",
            "invalid cron schedule `60 0 0 * * *`: the second field `60` is invalid (number out of bounds); the second field takes 0-59, lists (`,`), ranges (`-`) and steps (`*/n`)",
        ),
        (
            ", * * * *",
            "invalid cron schedule `, * * * *`: the minute field `,` is invalid (it names no value); the minute field takes 0-59, lists (`,`), ranges (`-`) and steps (`*/n`)",
        ),
        (
            "0 0 30 2 *",
            "the cron schedule `0 0 30 2 *` never fires: no date matches it; check the day-of-month and month fields (e.g. 30 February does not exist)",
        ),
    ];
    for (expr, expected) in cases {
        let err = Schedule::parse(expr, None).unwrap_err();
        assert_eq!(err.to_string(), expected, "{expr:?}");
        assert!(!err.is_time_zone());
        assert_eq!(
            err.to_string(),
            format!("{}; {}", err.message(), err.hint())
        );
    }
    // 29 February exists every fourth year, and is a Monday in 2016 and 2044.
    assert!(Schedule::parse("0 0 29 2 *", None).is_ok());
    let rare = Schedule::parse("0 0 29 2 +MON", None).unwrap();
    assert_eq!(
        rare.next_after(utc(2017, 1, 1, 0, 0)),
        Some(utc(2044, 2, 29, 0, 0))
    );
}

#[test]
fn time_zone_errors_suggest_a_name() {
    let cases = [
        (
            "Europe/Berln",
            "unknown time zone `Europe/Berln`; did you mean `Europe/Berlin`?",
        ),
        (
            "europe/berlin",
            "unknown time zone `europe/berlin`; did you mean `Europe/Berlin`?",
        ),
        ("utc", "unknown time zone `utc`; did you mean `UTC`?"),
        (
            "Mars/Olympus_Mons",
            "unknown time zone `Mars/Olympus_Mons`; use an IANA time zone name such as `Europe/Berlin`, `America/New_York` or `UTC`",
        ),
        (
            "",
            "unknown time zone ``; use an IANA time zone name such as `Europe/Berlin`, `America/New_York` or `UTC`",
        ),
    ];
    for (name, expected) in cases {
        let err = Schedule::parse("@daily", Some(name)).unwrap_err();
        assert!(err.is_time_zone(), "{name}");
        assert_eq!(err.to_string(), expected, "{name:?}");
    }
    assert_eq!(
        TimeZone::parse("Europe/Berlin").unwrap().to_string(),
        "Europe/Berlin"
    );
    assert_eq!(TimeZone::default(), TimeZone::UTC);
}

#[test]
fn hostile_input_is_an_error_never_a_panic() {
    let long = "* ".repeat(10_000);
    let inputs = [
        long.as_str(),
        "٣ * * * *",
        "0 3 * * * \u{0}",
        "@",
        "@@daily",
        "@daily extra",
        "-1 * * * *",
        "99999999999999999999 * * * *",
        "1-2-3 * * * *",
        "*/ * * * *",
        ", * * * *",
        "* , * * *",
        "* * * , *",
        ", * * * * *",
        "0 0 , * *",
        "0 0 * * ,",
        "L * * * *",
        "0 0 W * *",
        "0 0 * * #",
        "0 0 * * 8#9",
        "0 0 32W * *",
        "0 0 ? ? ?",
        "+ + + + +",
        "0 0 * * +",
    ];
    for expr in inputs {
        let started = std::time::Instant::now();
        let _ = Schedule::parse(expr, None);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{expr:?} took {:?}",
            started.elapsed()
        );
        let _ = Schedule::parse(expr, Some(expr));
    }
    let s = Schedule::parse("@hourly", None).unwrap();
    for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
        let _ = s.next_after(t);
        let _ = s.latest_at_or_before(t);
    }
    assert_eq!(s.next_after(i64::MAX), None);
}

#[test]
fn schedules_round_trip_through_json_and_are_checked_when_read() {
    let s = Schedule::parse("0 3 * * MON", Some("Europe/Berlin")).unwrap();
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(
        json,
        r#"{"expr":"0 3 * * MON","time_zone":"Europe/Berlin"}"#
    );
    let back: Schedule = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    let bad =
        serde_json::from_str::<Schedule>(r#"{"expr":"0 24 * * *","time_zone":"UTC"}"#).unwrap_err();
    assert!(
        bad.to_string().contains("the hour field `24` is invalid"),
        "{bad}"
    );
    let zone = serde_json::from_str::<TimeZone>(r#""Europe/Berln""#).unwrap_err();
    assert!(
        zone.to_string().contains("did you mean `Europe/Berlin`?"),
        "{zone}"
    );
}
