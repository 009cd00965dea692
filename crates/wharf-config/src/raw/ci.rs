//! `[ci]`: the app's CI steps, run by `wharf ci` and by the server's
//! pipelines. Only the shape is checked here (tables, keys, types, which
//! items are steps and which are groups, groups inside groups);
//! `validate::ci` checks what the values mean.
//!
//! ```toml
//! [ci]
//! steps = [
//!   { name = "Setup", run = "bin/setup --skip-server" },
//!   { group = "Checks", parallel = 3, steps = [
//!       { name = "Style", run = "bin/rubocop" },
//!       { name = "Audit", run = "bin/bundler-audit" } ] },
//!   { name = "Tests", run = "bin/rails test" },
//! ]
//! ```
//!
//! An item with `group` (or `steps`, or `parallel`) is a group, any other
//! item a step. Groups hold steps only: a group inside a group is an error
//! (a sequential group in a parallel one would need its own scheduling, and
//! one level is what Rails' `config/ci.rb` can parallelise too).

use toml::Spanned;
use toml::de::DeValue;

use super::{Sp, Span, Table, describe};
use crate::error::Sink;

pub(crate) const CI_KEYS: &[&str] = &["image", "steps"];
const STEP_KEYS: &[&str] = &["name", "run"];
/// A step's keys when it has `command`, which gets its own message (it is
/// `run` here), so that it is not also reported as unknown.
const STEP_KEYS_WITH_COMMAND: &[&str] = &["name", "run", "command"];
const GROUP_KEYS: &[&str] = &["group", "parallel", "steps"];
/// A group's keys when it has `name` or `run`, which get their own message.
const GROUP_KEYS_WITH_STEP_KEYS: &[&str] = &["group", "parallel", "steps", "name", "run"];

/// How to write `[ci]`, for hints.
pub(crate) const CI_EXAMPLE: &str = "[ci] followed by steps = [{ name = \"Tests\", run = \"bin/rails test\" }, { group = \"Checks\", parallel = 2, steps = [...] }]";
/// How to write one step, for hints.
const STEP_EXAMPLE: &str = "{ name = \"Tests\", run = \"bin/rails test\" }";

#[derive(Debug)]
pub(crate) struct RawCi {
    pub image: Option<Sp<String>>,
    /// `None` when missing or not an array (reported).
    pub steps: Option<RawCiSteps>,
}

/// `steps = [...]` of `[ci]` or of a group.
#[derive(Debug)]
pub(crate) struct RawCiSteps {
    /// Where the array is.
    pub span: Span,
    /// The items that are tables, in order (others were reported).
    pub items: Vec<RawCiItem>,
    /// How many items were written, tables or not.
    pub len: usize,
}

#[derive(Debug)]
pub(crate) enum RawCiItem {
    Step(RawCiStep),
    Group(RawCiGroup),
}

#[derive(Debug)]
pub(crate) struct RawCiStep {
    /// How messages name it: "[ci] step 2", "[ci] step 2.1" in a group.
    pub ctx: String,
    pub name: Option<Sp<String>>,
    pub run: Option<Sp<String>>,
}

#[derive(Debug)]
pub(crate) struct RawCiGroup {
    pub ctx: String,
    /// The `group` key's value: the group's name.
    pub name: Option<Sp<String>>,
    pub parallel: Option<Sp<i128>>,
    /// `None` when missing or not an array (reported).
    pub steps: Option<RawCiSteps>,
}

/// `[ci]`, if written as a table (anything else is reported).
pub(super) fn read_ci(top: &Table<'_, '_>, sink: &mut Sink<'_>) -> Option<RawCi> {
    let value = top.get("ci")?;
    let span = top.key_span("ci").unwrap_or_else(|| value.span());
    let DeValue::Table(table) = value.get_ref() else {
        top.wrong_type(
            sink,
            "ci",
            value,
            "a table",
            Some(format!("write {CI_EXAMPLE}")),
        );
        return None;
    };
    let t = Table::new(table, "[ci]", CI_KEYS, sink);
    if t.is_missing("steps") {
        sink.error_hint(
            &span,
            "missing required key `steps` in [ci]",
            format!("add the steps to run, e.g. steps = [{STEP_EXAMPLE}]"),
        );
    }
    Some(RawCi {
        image: t.string(sink, "image"),
        steps: read_steps(&t, "[ci]", None, sink),
    })
}

/// `steps` of `[ci]` (`group` is `None`) or of the group numbered `group`.
fn read_steps(
    table: &Table<'_, '_>,
    ctx: &str,
    group: Option<&str>,
    sink: &mut Sink<'_>,
) -> Option<RawCiSteps> {
    let value = table.get("steps")?;
    let DeValue::Array(array) = value.get_ref() else {
        let hint = match group {
            None => format!("write steps = [{STEP_EXAMPLE}, ...]"),
            Some(_) => {
                format!("write {ctx} as {{ group = \"Checks\", steps = [{STEP_EXAMPLE}, ...] }}")
            }
        };
        table.wrong_type(sink, "steps", value, "an array", Some(hint));
        return None;
    };
    let items = array
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let ctx = match group {
                None => format!("[ci] step {}", i + 1),
                Some(number) => format!("[ci] step {number}.{}", i + 1),
            };
            read_item(item, ctx, group.is_some(), sink)
        })
        .collect();
    Some(RawCiSteps {
        span: value.span(),
        items,
        len: array.len(),
    })
}

fn read_item(
    value: &Spanned<DeValue<'_>>,
    ctx: String,
    in_group: bool,
    sink: &mut Sink<'_>,
) -> Option<RawCiItem> {
    let table = match value.get_ref() {
        DeValue::Table(table) => table,
        DeValue::String(command) => {
            sink.error_hint(
                &value.span(),
                format!("{ctx} must be a table, found a string"),
                format!(
                    "give the step a name: {{ name = \"...\", run = {} }}",
                    toml::Value::String(command.to_string())
                ),
            );
            return None;
        }
        other => {
            sink.error_hint(
                &value.span(),
                format!("{ctx} must be a table, found {}", describe(other)),
                format!("write {STEP_EXAMPLE}"),
            );
            return None;
        }
    };
    let is_group = ["group", "steps", "parallel"]
        .iter()
        .any(|key| table.get(*key).is_some());
    let span = value.span();
    if !is_group {
        let keys = if table.get("command").is_some() {
            STEP_KEYS_WITH_COMMAND
        } else {
            STEP_KEYS
        };
        let t = Table::new(table, &ctx, keys, sink);
        if let Some(key) = t.key_span("command") {
            sink.error_hint(
                &key,
                format!("unknown key `command` in {ctx}"),
                format!("a step's command is `run`: {STEP_EXAMPLE}"),
            );
        }
        for (key, hint) in [
            (
                "name",
                "add name = \"...\": how the step is shown, and picked with `wharf ci --step NAME`",
            ),
            (
                "run",
                "add run = \"...\": the shell command of the step, e.g. run = \"bin/rails test\"",
            ),
        ] {
            if t.is_missing(key) && (key != "run" || t.get("command").is_none()) {
                sink.error_hint(
                    &span,
                    format!("missing required key `{key}` in {ctx}"),
                    hint,
                );
            }
        }
        return Some(RawCiItem::Step(RawCiStep {
            name: t.string(sink, "name"),
            run: t.string(sink, "run"),
            ctx,
        }));
    }
    if in_group {
        sink.error_hint(
            &span,
            format!("{ctx} is a group inside a group; groups hold steps only"),
            "move this group to the top level of `steps` in [ci], or list its steps in the outer group",
        );
        return None;
    }
    let keys = if table.get("name").is_some() || table.get("run").is_some() {
        GROUP_KEYS_WITH_STEP_KEYS
    } else {
        GROUP_KEYS
    };
    let t = Table::new(table, &ctx, keys, sink);
    if let Some(key) = t.key_span("name") {
        sink.error_hint(
            &key,
            format!("unknown key `name` in {ctx}, a group"),
            "a group is named by `group`: { group = \"Checks\", parallel = 2, steps = [...] }",
        );
    }
    if let Some(key) = t.key_span("run") {
        sink.error_hint(
            &key,
            format!("unknown key `run` in {ctx}, a group"),
            "a group runs its `steps`; make this command a step of its own",
        );
    }
    if t.is_missing("group") && t.get("name").is_none() {
        sink.error_hint(
            &span,
            format!("missing required key `group` in {ctx}"),
            "name the group: { group = \"Checks\", parallel = 2, steps = [...] }",
        );
    }
    if t.is_missing("steps") {
        sink.error_hint(
            &span,
            format!("missing required key `steps` in {ctx}"),
            format!("list the group's steps: steps = [{STEP_EXAMPLE}, ...]"),
        );
    }
    let number = ctx.trim_start_matches("[ci] step ").to_string();
    Some(RawCiItem::Group(RawCiGroup {
        name: t.string(sink, "group"),
        parallel: t.integer(sink, "parallel"),
        steps: read_steps(&t, &ctx, Some(&number), sink),
        ctx,
    }))
}
