//! `[cron.NAME]`: commands run on a schedule. Only the shape is checked
//! here; `validate::cron` checks what the values mean.

use toml::de::DeValue;

use super::{Sp, Table, describe};
use crate::error::Sink;

pub(crate) const CRON_KEYS: &[&str] = &[
    "schedule",
    "time_zone",
    "command",
    "process",
    "catch_up",
    "timeout",
];

/// How to write a cron entry, for hints.
pub(crate) const CRON_EXAMPLE: &str =
    "[cron.NAME] followed by schedule = \"0 3 * * *\" and command = \"...\"";

#[derive(Debug)]
pub(crate) struct RawCron {
    /// The name as written in `[cron.NAME]`, spanning NAME.
    pub name: Sp<String>,
    pub schedule: Option<Sp<String>>,
    pub time_zone: Option<Sp<String>>,
    pub command: Option<Sp<String>>,
    pub process: Option<Sp<String>>,
    pub catch_up: Option<Sp<bool>>,
    pub timeout: Option<Sp<String>>,
}

/// The entries of `[cron]`, in source order.
pub(super) fn read_cron(top: &Table<'_, '_>, sink: &mut Sink<'_>) -> Vec<RawCron> {
    let Some(table) = top.table(sink, "cron") else {
        return Vec::new();
    };
    let mut entries: Vec<RawCron> = table
        .iter()
        .filter_map(|(name, value)| {
            let name = Sp {
                value: name.get_ref().to_string(),
                span: name.span(),
            };
            let ctx = format!("[cron.{}]", name.value);
            let DeValue::Table(table) = value.get_ref() else {
                sink.error_hint(
                    &value.span(),
                    format!(
                        "cron entry `{}` must be a table, found {}",
                        name.value,
                        describe(value.get_ref())
                    ),
                    format!("write {}", CRON_EXAMPLE.replace("[cron.NAME]", &ctx)),
                );
                return None;
            };
            let t = Table::new(table, &ctx, CRON_KEYS, sink);
            for (key, hint) in [
                (
                    "schedule",
                    "add schedule = \"0 3 * * *\" (five cron fields) or a nickname such as \"@daily\"",
                ),
                (
                    "command",
                    "add command = \"...\": what to run, e.g. command = \"bin/rails cleanup\"",
                ),
            ] {
                if t.is_missing(key) {
                    sink.error_hint(
                        &value.span(),
                        format!("missing required key `{key}` in {ctx}"),
                        hint,
                    );
                }
            }
            Some(RawCron {
                schedule: t.string(sink, "schedule"),
                time_zone: t.string(sink, "time_zone"),
                command: t.string(sink, "command"),
                process: t.string(sink, "process"),
                catch_up: t.boolean(sink, "catch_up"),
                timeout: t.duration(sink, "timeout"),
                name,
            })
        })
        .collect();
    entries.sort_by_key(|e| e.name.span.start);
    entries
}
