//! Cron schedules: `[cron.NAME] schedule = "0 3 * * *"` with an optional
//! IANA time zone, and when they fire.
//!
//! Accepted forms:
//! - five fields, `minute hour day-of-month month day-of-week`, with
//!   ranges, lists, `*/n` steps, month and weekday names, and croner's
//!   extensions (`L`, `W`, `#`, a `+` before day-of-week to require both
//!   day fields);
//! - six fields, `second` first: sub-minute schedules, for tests and the
//!   rare job that needs them;
//! - `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly`
//!   (`@annually`).
//!
//! Times are milliseconds since the Unix epoch; a schedule is evaluated on
//! the wall clock of its time zone (UTC by default) with whole seconds.
//!
//! Daylight saving time (croner 4.0.3 semantics, tested below with
//! Europe/Berlin):
//! - spring forward: a *fixed-time* entry (one second, one minute, one
//!   hour, e.g. `30 2 * * *`) whose wall time does not exist that day runs
//!   once at the first instant after the gap (03:00 local); an *interval*
//!   entry (a wildcard, step or list in those fields, e.g. `*/15 * * * *`,
//!   `@hourly`) has no runs in the skipped hour;
//! - fall back: a fixed-time entry runs once, in the first pass of the
//!   repeated hour; an interval entry runs in both passes (an hourly entry
//!   runs every real hour).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};

/// A time zone by IANA name (`Europe/Berlin`, `UTC`); serialized as its
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(Tz);

impl TimeZone {
    pub const UTC: TimeZone = TimeZone(Tz::UTC);

    /// Reads an IANA time zone name. Names are case-sensitive, as in the
    /// tz database; a near miss gets a "did you mean".
    pub fn parse(name: &str) -> Result<TimeZone, ScheduleError> {
        let trimmed = name.trim();
        Tz::from_str(trimmed)
            .map(TimeZone)
            .map_err(|_| ScheduleError::UnknownTimeZone {
                name: name.to_string(),
                suggestion: suggest_zone(trimmed),
            })
    }

    /// Its IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone::UTC
    }
}

impl TryFrom<String> for TimeZone {
    type Error = ScheduleError;
    fn try_from(name: String) -> Result<Self, ScheduleError> {
        TimeZone::parse(&name)
    }
}

impl From<TimeZone> for String {
    fn from(tz: TimeZone) -> String {
        tz.name().to_string()
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The closest known zone name: the same name in another case, else the
/// nearest by edit distance when it is close enough to be a typo.
fn suggest_zone(name: &str) -> Option<&'static str> {
    let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
    if let Some(same) = names.clone().find(|n| n.eq_ignore_ascii_case(name)) {
        return Some(same);
    }
    let lower = name.to_ascii_lowercase();
    names
        .map(|n| (strsim::levenshtein(&lower, &n.to_ascii_lowercase()), n))
        .filter(|(d, n)| *d <= 3 && *d < n.len() / 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// A cron schedule in a time zone. Serialized as
/// `{"expr": "0 3 * * *", "time_zone": "UTC"}` and parsed again when read
/// back, so a stored config cannot hold a schedule that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "ScheduleRepr", into = "ScheduleRepr")]
pub struct Schedule {
    expr: String,
    tz: TimeZone,
    cron: Cron,
}

impl Schedule {
    /// Parses `expr` (see the module docs for the forms) in the time zone
    /// named `tz` (UTC when `None`). The error says which of the two is
    /// wrong ([`ScheduleError::is_time_zone`]), for a config validator to
    /// point at the right key.
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Schedule, ScheduleError> {
        let tz = match tz {
            Some(name) => TimeZone::parse(name)?,
            None => TimeZone::UTC,
        };
        Schedule::parse_in(expr, tz)
    }

    /// Parses `expr` in an already parsed time zone.
    pub fn parse_in(expr: &str, tz: TimeZone) -> Result<Schedule, ScheduleError> {
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let fields = if let Some(name) = trimmed.strip_prefix('@') {
            nickname(name).ok_or_else(|| ScheduleError::UnknownNickname {
                expr: trimmed.to_string(),
            })?
        } else {
            trimmed
        };
        let count = fields.split_whitespace().count();
        if !(5..=6).contains(&count) {
            return Err(ScheduleError::FieldCount {
                expr: trimmed.to_string(),
                found: count,
            });
        }
        let cron = parser().parse(fields).map_err(|e| ScheduleError::Invalid {
            expr: trimmed.to_string(),
            reason: reason(&e),
            field: locate(fields),
        })?;
        // A field left with no value (`,` parses) would make every search
        // walk second by second to year 5000: refuse it here.
        let p = &cron.pattern;
        let parts: Vec<&str> = fields.split_whitespace().collect();
        let offset = 6 - parts.len();
        let time_fields = [
            (0, &p.seconds),
            (1, &p.minutes),
            (2, &p.hours),
            (4, &p.months),
        ];
        for (spec, component) in time_fields {
            if component.values().is_empty() {
                let (name, takes) = FIELD_SPECS[spec];
                let value = spec
                    .checked_sub(offset)
                    .and_then(|i| parts.get(i))
                    .map_or_else(|| "0".to_string(), |v| v.to_string());
                return Err(ScheduleError::Invalid {
                    expr: trimmed.to_string(),
                    reason: "it names no value".to_string(),
                    field: Some(InvalidField { name, value, takes }),
                });
            }
        }
        let schedule = Schedule {
            expr: trimmed.to_string(),
            tz,
            cron,
        };
        // A pattern can be well-formed and still name no real time
        // (`0 0 30 2 *`); refuse it here rather than never run. Without a
        // year field a pattern that fires at all fires again within
        // every 400-year Gregorian cycle, so one search from any start
        // tells.
        let probe = 946_684_800_000; // 2000-01-01T00:00:00Z
        match schedule.next_after(probe) {
            Some(_) => Ok(schedule),
            None => Err(ScheduleError::NeverFires {
                expr: schedule.expr,
            }),
        }
    }

    /// The expression as written (trimmed).
    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn time_zone(&self) -> TimeZone {
        self.tz
    }

    /// Whether the expression has a seconds field.
    pub fn has_seconds(&self) -> bool {
        !self.expr.starts_with('@') && self.expr.split_whitespace().count() == 6
    }

    /// In words, e.g. "At 03:00." (croner's English description).
    pub fn describe(&self) -> String {
        self.cron.describe()
    }

    /// The first fire time strictly after `ms`, or `None` past year 5000
    /// (croner's search limit) or at a time chrono cannot represent.
    pub fn next_after(&self, ms: i64) -> Option<i64> {
        let start = self.zoned(ms)?;
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        Some(next.timestamp_millis())
    }

    /// The latest fire time at or before `ms`: the run that is due at
    /// `ms`, if it has not run yet.
    pub fn latest_at_or_before(&self, ms: i64) -> Option<i64> {
        let start = self.zoned(ms)?;
        let prev = self.cron.find_previous_occurrence(&start, true).ok()?;
        Some(prev.timestamp_millis())
    }

    /// `ms` truncated to its second, on this schedule's wall clock.
    fn zoned(&self, ms: i64) -> Option<DateTime<Tz>> {
        let utc = Utc.timestamp_opt(ms.div_euclid(1000), 0).single()?;
        Some(utc.with_timezone(&self.tz.0))
    }
}

/// How a [`Schedule`] is serialized.
#[derive(Serialize, Deserialize)]
struct ScheduleRepr {
    expr: String,
    time_zone: TimeZone,
}

impl TryFrom<ScheduleRepr> for Schedule {
    type Error = ScheduleError;
    fn try_from(repr: ScheduleRepr) -> Result<Self, ScheduleError> {
        Schedule::parse_in(&repr.expr, repr.time_zone)
    }
}

impl From<Schedule> for ScheduleRepr {
    fn from(s: Schedule) -> ScheduleRepr {
        ScheduleRepr {
            expr: s.expr,
            time_zone: s.tz,
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` ({})", self.expr, self.tz)
    }
}

/// The five fields a nickname stands for.
fn nickname(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "yearly" | "annually" => "0 0 1 1 *",
        "monthly" => "0 0 1 * *",
        "weekly" => "0 0 * * 0",
        "daily" | "midnight" => "0 0 * * *",
        "hourly" => "0 * * * *",
        _ => return None,
    })
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// The fields of a five-field expression (a sixth, seconds, goes first),
/// with what each takes.
const FIELD_SPECS: [(&str, &str); 6] = [
    ("second", "0-59"),
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, `L` (last) and `W` (nearest weekday)"),
    ("month", "1-12 or JAN-DEC"),
    (
        "day-of-week",
        "0-7 or SUN-SAT (0 and 7 are Sunday), `#` (nth) and `L` (last)",
    ),
];

/// Finds the first field that is wrong on its own, by parsing it with
/// every other field a wildcard.
fn locate(fields: &str) -> Option<InvalidField> {
    let parts: Vec<&str> = fields.split_whitespace().collect();
    let specs = &FIELD_SPECS[6 - parts.len()..];
    (0..parts.len()).find_map(|i| {
        let probe: Vec<&str> = (0..parts.len())
            .map(|j| if j == i { parts[j] } else { "*" })
            .collect();
        parser().parse(&probe.join(" ")).err()?;
        let (name, takes) = specs[i];
        Some(InvalidField {
            name,
            value: parts[i].to_string(),
            takes,
        })
    })
}

/// croner's message, without its "Invalid pattern:"-style prefix and
/// trailing period, to sit inside a sentence of ours.
fn reason(e: &croner::errors::CronError) -> String {
    let text = e.to_string();
    let text = [
        "Invalid pattern: ",
        "Pattern contains illegal characters: ",
        "Component error: ",
    ]
    .iter()
    .find_map(|p| text.strip_prefix(p))
    .unwrap_or(&text);
    let text = text
        .trim()
        .trim_start_matches("CronPattern ")
        .trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "it is not a cron expression".to_string(),
    }
}

/// The field of an expression that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    /// `minute`, `hour`, `day-of-month`, `month`, `day-of-week` or `second`.
    pub name: &'static str,
    /// The field as written.
    pub value: String,
    /// What the field takes, e.g. "0-23".
    pub takes: &'static str,
}

const FIELDS: &str = "minute hour day-of-month month day-of-week";

/// A schedule or time zone that cannot be used. `Display` is the whole
/// sentence; [`message`](ScheduleError::message) and
/// [`hint`](ScheduleError::hint) are its two halves for config errors
/// (`file:line:col: message` then `= hint: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}; {}", self.message(), self.hint())]
pub enum ScheduleError {
    Empty,
    FieldCount {
        expr: String,
        found: usize,
    },
    UnknownNickname {
        expr: String,
    },
    Invalid {
        expr: String,
        reason: String,
        /// The field at fault, when one is wrong on its own.
        field: Option<InvalidField>,
    },
    NeverFires {
        expr: String,
    },
    UnknownTimeZone {
        name: String,
        suggestion: Option<&'static str>,
    },
}

impl ScheduleError {
    /// What is wrong, on what.
    pub fn message(&self) -> String {
        match self {
            ScheduleError::Empty => "the cron schedule is empty".to_string(),
            ScheduleError::FieldCount { expr, found } => {
                format!(
                    "the cron schedule `{expr}` has {found} field{}",
                    plural(*found)
                )
            }
            ScheduleError::UnknownNickname { expr } => {
                format!("`{expr}` is not a schedule wharf knows")
            }
            ScheduleError::Invalid {
                expr,
                reason,
                field: Some(f),
            } => format!(
                "invalid cron schedule `{expr}`: the {} field `{}` is invalid ({reason})",
                f.name, f.value
            ),
            ScheduleError::Invalid { expr, reason, .. } => {
                format!("invalid cron schedule `{expr}`: {reason}")
            }
            ScheduleError::NeverFires { expr } => {
                format!("the cron schedule `{expr}` never fires: no date matches it")
            }
            ScheduleError::UnknownTimeZone { name, .. } => {
                format!("unknown time zone `{name}`")
            }
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            ScheduleError::Empty | ScheduleError::FieldCount { .. } => format!(
                "write five fields ({FIELDS}), e.g. `0 3 * * *` for 03:00 every day, six with seconds first, or `@daily`"
            ),
            ScheduleError::UnknownNickname { .. } => {
                "use `@hourly`, `@daily`, `@weekly`, `@monthly` or `@yearly`, or five fields such as `0 3 * * *`".to_string()
            }
            ScheduleError::Invalid { field: Some(f), .. } => {
                format!("the {} field takes {}, lists (`,`), ranges (`-`) and steps (`*/n`)", f.name, f.takes)
            }
            ScheduleError::Invalid { field: None, .. } => format!(
                "the fields are {FIELDS} (0-59, 0-23, 1-31, 1-12 or JAN-DEC, 0-7 or SUN-SAT), with an optional seconds field first"
            ),
            ScheduleError::NeverFires { .. } => {
                "check the day-of-month and month fields (e.g. 30 February does not exist)".to_string()
            }
            ScheduleError::UnknownTimeZone { suggestion, .. } => match suggestion {
                Some(s) => format!("did you mean `{s}`?"),
                None => "use an IANA time zone name such as `Europe/Berlin`, `America/New_York` or `UTC`".to_string(),
            },
        }
    }

    /// Whether the time zone (not the expression) is what is wrong.
    pub fn is_time_zone(&self) -> bool {
        matches!(self, ScheduleError::UnknownTimeZone { .. })
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
