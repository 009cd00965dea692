//! When a cron entry runs: the decision a scheduler makes on each tick.
//!
//! A scheduler (the server) keeps no state of its own. On a tick it reads,
//! per entry, what the store recorded ([`CronHistory`]: the latest
//! scheduled time it ran or skipped, and whether a run is still queued or
//! running), calls [`decide`], and writes what it says: a cron job keyed by
//! (app, entry, scheduled time) ([`dedup_key`]), or a `skipped` record with
//! the same key. The key's unique index is what makes a run happen at most
//! once per scheduled time, across restarts and racing schedulers; this
//! function only avoids asking twice. Then it sleeps until
//! [`Schedule::next_after`].
//!
//! The rules:
//! - only the latest scheduled time at or before now is considered; older
//!   ones that never ran (the server was down) are not run;
//! - a run is *on time* when it is at most [`CronOptions::grace`] late;
//!   later than that it was *missed*: with `catch_up` (the default) it runs
//!   once now, without it it is recorded as skipped;
//! - a due run while the entry's previous run is still queued or running is
//!   skipped and recorded;
//! - an entry that has no recorded run yet never catches up on a time
//!   before it was known ([`CronHistory::since_ms`]), nor, when that is
//!   unknown, on any missed time: its first run is its next on-time one.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::{JobId, Schedule};

/// What the store knows of one entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CronHistory {
    /// The latest scheduled time recorded for the entry (run or skipped).
    pub last_scheduled_ms: Option<i64>,
    /// A run of the entry that is still queued or running.
    pub active: Option<JobId>,
    /// Since when the entry exists with this schedule (e.g. when the
    /// release whose config added or changed it started serving): a time
    /// before this never runs, so a new or edited entry does not "catch up"
    /// on a time it was never scheduled for.
    pub since_ms: Option<i64>,
}

/// How an entry treats lateness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronOptions {
    /// Run the latest missed time once after downtime (`catch_up`, default
    /// true); when false, a missed time is recorded as skipped.
    pub catch_up: bool,
    /// How late a run may start and still be on time (default 60 s): more
    /// than a scheduler's tick, less than any downtime worth the name.
    pub grace: Duration,
}

impl Default for CronOptions {
    fn default() -> Self {
        CronOptions {
            catch_up: true,
            grace: Duration::from_secs(60),
        }
    }
}

/// What to do now about an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Decision {
    /// Nothing is due.
    Idle,
    /// Enqueue the run of `scheduled_ms`; `late_ms` is how late it starts
    /// (above the grace: a catch-up after downtime).
    Run { scheduled_ms: i64, late_ms: i64 },
    /// Record the run of `scheduled_ms` as skipped, for `reason`.
    Skip {
        scheduled_ms: i64,
        reason: SkipReason,
    },
}

/// Why a scheduled run did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum SkipReason {
    /// The previous run (this job) was still queued or running.
    PreviousActive { job: JobId },
    /// Due while the server was down, and the entry has `catch_up = false`.
    Missed,
    /// The job queue refused the run (the scheduler records this itself
    /// when an enqueue answers "full"; [`decide`] never returns it).
    QueueFull,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::PreviousActive { job } => {
                write!(f, "skipped: the previous run (job {job}) was still running")
            }
            SkipReason::Missed => f.write_str(
                "skipped: due while the server was down, and `catch_up = false` skips missed runs",
            ),
            SkipReason::QueueFull => f.write_str("skipped: the job queue was full"),
        }
    }
}

/// Decides what an entry does at `now_ms` (see the module docs).
pub fn decide(
    schedule: &Schedule,
    now_ms: i64,
    history: &CronHistory,
    options: CronOptions,
) -> Decision {
    let Some(due) = schedule.latest_at_or_before(now_ms) else {
        return Decision::Idle;
    };
    if history.last_scheduled_ms.is_some_and(|last| due <= last)
        || history.since_ms.is_some_and(|since| due < since)
    {
        return Decision::Idle;
    }
    let late_ms = now_ms.saturating_sub(due);
    let grace_ms = i64::try_from(options.grace.as_millis()).unwrap_or(i64::MAX);
    if late_ms > grace_ms {
        // Missed: the scheduler was not there when it was due.
        if history.last_scheduled_ms.is_none() && history.since_ms.is_none() {
            return Decision::Idle;
        }
        if !options.catch_up {
            return Decision::Skip {
                scheduled_ms: due,
                reason: SkipReason::Missed,
            };
        }
    }
    if let Some(job) = history.active {
        return Decision::Skip {
            scheduled_ms: due,
            reason: SkipReason::PreviousActive { job },
        };
    }
    Decision::Run {
        scheduled_ms: due,
        late_ms,
    }
}

/// The de-duplication key of the run of `entry` of `app` scheduled at
/// `scheduled_ms`: `cron:<app>:<entry>:<scheduled_ms>`. App names hold no
/// `:`, so the key is unambiguous whatever the entry's name.
pub fn dedup_key(app: &str, entry: &str, scheduled_ms: i64) -> String {
    format!("cron:{app}:{entry}:{scheduled_ms}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    /// 2025-01-01T00:00:00Z
    const DAY0: i64 = 1_735_689_600_000;

    fn daily_3am() -> Schedule {
        Schedule::parse("0 3 * * *", None).unwrap()
    }

    fn at(hours: i64, minutes: i64) -> i64 {
        DAY0 + hours * HOUR + minutes * MIN
    }

    fn hist(last: Option<i64>, active: Option<JobId>) -> CronHistory {
        CronHistory {
            last_scheduled_ms: last,
            active,
            since_ms: None,
        }
    }

    fn run(scheduled_ms: i64, late_ms: i64) -> Decision {
        Decision::Run {
            scheduled_ms,
            late_ms,
        }
    }

    fn skip(scheduled_ms: i64, reason: SkipReason) -> Decision {
        Decision::Skip {
            scheduled_ms,
            reason,
        }
    }

    #[test]
    fn decision_table() {
        let s = daily_3am();
        let yesterday_3 = at(-21, 0);
        let today_3 = at(3, 0);
        let catch_up = CronOptions::default();
        let no_catch_up = CronOptions {
            catch_up: false,
            ..CronOptions::default()
        };
        // (name, now, history, options, expected)
        let cases = [
            (
                "before it is due",
                at(2, 59),
                hist(Some(yesterday_3), None),
                catch_up,
                Decision::Idle,
            ),
            (
                "due on time",
                at(3, 0) + 500,
                hist(Some(yesterday_3), None),
                catch_up,
                run(today_3, 500),
            ),
            (
                "within the grace",
                at(3, 1),
                hist(Some(yesterday_3), None),
                catch_up,
                run(today_3, MIN),
            ),
            (
                "already recorded: never twice",
                at(3, 0) + 10,
                hist(Some(today_3), None),
                catch_up,
                Decision::Idle,
            ),
            (
                "later the same day, recorded",
                at(15, 0),
                hist(Some(today_3), None),
                catch_up,
                Decision::Idle,
            ),
            (
                "previous run still active: skip and record",
                at(3, 0),
                hist(Some(yesterday_3), Some(7)),
                catch_up,
                skip(today_3, SkipReason::PreviousActive { job: 7 }),
            ),
            (
                "after downtime: the latest missed runs once",
                at(9, 0),
                hist(Some(at(-69, 0)), None),
                catch_up,
                run(today_3, 6 * HOUR),
            ),
            (
                "after downtime without catch_up: recorded as skipped",
                at(9, 0),
                hist(Some(yesterday_3), None),
                no_catch_up,
                skip(today_3, SkipReason::Missed),
            ),
            (
                "without catch_up an on-time run still runs",
                at(3, 0),
                hist(Some(yesterday_3), None),
                no_catch_up,
                run(today_3, 0),
            ),
            (
                "a missed run while the previous is still running is skipped as such",
                at(9, 0),
                hist(Some(yesterday_3), Some(3)),
                catch_up,
                skip(today_3, SkipReason::PreviousActive { job: 3 }),
            ),
            (
                "never ran, on time: runs",
                at(3, 0),
                hist(None, None),
                catch_up,
                run(today_3, 0),
            ),
            (
                "never ran, missed: waits for the next",
                at(9, 0),
                hist(None, None),
                catch_up,
                Decision::Idle,
            ),
            (
                "clock went back before the last run",
                at(2, 0),
                hist(Some(today_3), None),
                catch_up,
                Decision::Idle,
            ),
        ];
        for (name, now, history, options, expected) in cases {
            assert_eq!(decide(&s, now, &history, options), expected, "{name}");
        }
    }

    #[test]
    fn since_bounds_what_a_new_or_edited_entry_catches_up() {
        let s = daily_3am();
        let known = |since| CronHistory {
            last_scheduled_ms: None,
            active: None,
            since_ms: Some(since),
        };
        // Added at 01:00, server down from 02:00 to 09:00: 03:00 was missed, runs once.
        assert_eq!(
            decide(&s, at(9, 0), &known(at(1, 0)), CronOptions::default()),
            run(at(3, 0), 6 * HOUR)
        );
        // Added (or changed to this schedule) at 05:00: 03:00 was never its time.
        assert_eq!(
            decide(&s, at(9, 0), &known(at(5, 0)), CronOptions::default()),
            Decision::Idle
        );
        // Edited schedule with older history: `since` still wins.
        let edited = CronHistory {
            last_scheduled_ms: Some(at(-21, 0)),
            active: None,
            since_ms: Some(at(5, 0)),
        };
        assert_eq!(
            decide(&s, at(9, 0), &edited, CronOptions::default()),
            Decision::Idle
        );
    }

    #[test]
    fn a_whole_day_of_ticks_runs_each_time_once() {
        // Simulates a scheduler ticking every 20 s over a day of a
        // quarter-hourly entry, recording what it decides.
        let s = Schedule::parse("*/15 * * * *", None).unwrap();
        let mut history = CronHistory::default();
        let mut runs = Vec::new();
        let mut now = DAY0;
        while now < DAY0 + 24 * HOUR {
            if let Decision::Run { scheduled_ms, .. } =
                decide(&s, now, &history, CronOptions::default())
            {
                runs.push(scheduled_ms);
                history.last_scheduled_ms = Some(scheduled_ms);
            }
            now += 20_000;
        }
        assert_eq!(runs.len(), 96);
        assert!(runs.windows(2).all(|w| w[1] - w[0] == 15 * MIN));
    }

    #[test]
    fn skip_reasons_read_as_sentences() {
        assert_eq!(
            SkipReason::PreviousActive { job: 12 }.to_string(),
            "skipped: the previous run (job 12) was still running"
        );
        assert!(
            SkipReason::Missed
                .to_string()
                .contains("`catch_up = false`")
        );
    }

    #[test]
    fn dedup_keys_name_app_entry_and_time() {
        assert_eq!(dedup_key("shop", "cleanup", 42), "cron:shop:cleanup:42");
    }
}
