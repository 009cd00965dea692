//! `[cron.NAME]`: the schedule and time zone (parsed by `wharf-jobs`), the
//! process an entry runs as, its command and its timeout.

use std::collections::BTreeMap;

use wharf_jobs::{Schedule, ScheduleError, TimeZone};

use super::{DurationRule, check_name, defaults, duration};
use crate::error::Sink;
use crate::raw::{self, RawCron, Span};
use crate::{CronEntry, ProcessConfig};

/// Resolves every entry; one whose schedule is missing or invalid
/// (reported) is left out.
pub(super) fn resolve_cron(
    raw: Vec<RawCron>,
    first_process: Option<&str>,
    processes: &BTreeMap<String, ProcessConfig>,
    sink: &mut Sink<'_>,
) -> BTreeMap<String, CronEntry> {
    raw.into_iter()
        .filter_map(|entry| resolve_entry(entry, first_process, processes, sink))
        .map(|entry| (entry.name.clone(), entry))
        .collect()
}

fn resolve_entry(
    raw: RawCron,
    first_process: Option<&str>,
    processes: &BTreeMap<String, ProcessConfig>,
    sink: &mut Sink<'_>,
) -> Option<CronEntry> {
    let ctx = format!("[cron.{}]", raw.name.value);
    check_name(&raw.name, "cron entry name", sink);
    // A bad time zone is reported and the schedule still checked (in UTC),
    // so both problems show at once.
    let time_zone = match &raw.time_zone {
        Some(tz) => TimeZone::parse(&tz.value)
            .map_err(|e| report(&e, &ctx, None, &tz.span, sink))
            .ok(),
        None => Some(TimeZone::UTC),
    };
    let schedule = raw.schedule.as_ref().and_then(|s| {
        let tz_span = raw.time_zone.as_ref().map_or(&s.span, |tz| &tz.span);
        Schedule::parse_in(&s.value, time_zone.unwrap_or_default())
            .map_err(|e| report(&e, &ctx, Some(&s.span), tz_span, sink))
            .ok()
    });
    let process = match raw.process {
        Some(p) => {
            if !processes.is_empty() && !processes.contains_key(&p.value) {
                let names: Vec<&str> = processes.keys().map(String::as_str).collect();
                let hint = match raw::closest(&p.value, &names) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => {
                        let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                        format!("the processes of this app are {}", list.join(", "))
                    }
                };
                sink.error_hint(
                    &p.span,
                    format!(
                        "{} must name a process of this app, found {:?}",
                        raw::subject("process", &ctx),
                        p.value
                    ),
                    hint,
                );
            }
            p.value
        }
        None => first_process.unwrap_or_default().to_string(),
    };
    if let Some(command) = &raw.command
        && command.value.trim().is_empty()
    {
        sink.error_hint(
            &command.span,
            format!("{} must not be empty", raw::subject("command", &ctx)),
            "give the command to run, e.g. command = \"bin/rails cleanup\"",
        );
    }
    let timeout = duration(
        raw.timeout.as_ref(),
        &raw::subject("timeout", &ctx),
        DurationRule::POSITIVE,
        defaults::CRON_TIMEOUT,
        sink,
    );
    Some(CronEntry {
        schedule: schedule?,
        command: raw.command?.value,
        process,
        catch_up: raw.catch_up.map_or(defaults::CRON_CATCH_UP, |c| c.value),
        timeout,
        name: raw.name.value,
    })
}

/// Reports a schedule or time zone problem at the key that is wrong:
/// `time_zone` when [`ScheduleError::is_time_zone`] (or no schedule span
/// is given), else `schedule`.
fn report(
    error: &ScheduleError,
    ctx: &str,
    schedule: Option<&Span>,
    time_zone: &Span,
    sink: &mut Sink<'_>,
) {
    let (key, span) = match schedule {
        Some(span) if !error.is_time_zone() => ("schedule", span),
        _ => ("time_zone", time_zone),
    };
    sink.error_hint(
        span,
        format!("{}: {}", raw::subject(key, ctx), error.message()),
        error.hint(),
    );
}
