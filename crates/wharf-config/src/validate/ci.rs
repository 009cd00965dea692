//! `[ci]`: step and group names (non-empty, one line, unique across steps
//! and groups, since `wharf ci --step NAME` picks either), commands
//! (non-empty), `parallel` (1 to 64), `image` (`"build"`, docker only,
//! and not with a prebuilt top-level `image`);
//! and `[deploy] branch` (a git branch name).

use std::collections::BTreeMap;

use super::docker::needs_docker;
use super::int_in;
use crate::error::Sink;
use crate::raw::{self, RawCi, RawCiGroup, RawCiItem, RawCiStep, RawCiSteps, Sp, Span};
use crate::{CiConfig, CiGroup, CiImage, CiRun, CiStep, RuntimeKind};

/// Most steps a group may run at once.
const MAX_PARALLEL: u32 = 64;
const STEP_EXAMPLE: &str = "{ name = \"Tests\", run = \"bin/rails test\" }";

/// The resolved `[ci]`, or `None` when it is absent or so broken (reported)
/// that there are no steps to keep.
pub(super) fn resolve_ci(
    raw: Option<RawCi>,
    runtime: RuntimeKind,
    prebuilt: Option<&str>,
    sink: &mut Sink<'_>,
) -> Option<CiConfig> {
    let raw = raw?;
    let image = raw.image.and_then(|image| {
        if image.value != "build" {
            sink.error_hint(
                &image.span,
                format!("`image` in [ci] must be \"build\", found {:?}", image.value),
                "image = \"build\" runs the steps in a container of the app's build image; leave it out to run them on the host",
            );
            return None;
        }
        if runtime != RuntimeKind::Docker {
            needs_docker(&image.span, "`image` in [ci]", sink);
        } else if let Some(prebuilt) = prebuilt {
            sink.error_hint(
                &image.span,
                format!(
                    "`image` in [ci] runs the steps in the app's build image, but the app deploys the prebuilt image {prebuilt:?}"
                ),
                "build the app's image from its Dockerfile (remove the top-level `image`), or remove `image` from [ci] to run the steps on the host",
            );
        }
        Some(CiImage::Build)
    });
    // name -> the context of the item that has it first.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let steps = resolve_steps(raw.steps?, "[ci]", &mut names, sink);
    Some(CiConfig { image, steps })
}

fn resolve_steps(
    raw: RawCiSteps,
    owner: &str,
    names: &mut BTreeMap<String, String>,
    sink: &mut Sink<'_>,
) -> Vec<CiStep> {
    check_not_empty(&raw.span, raw.len, owner, sink);
    raw.items
        .into_iter()
        .filter_map(|item| match item {
            RawCiItem::Step(step) => resolve_run(step, names, sink).map(CiStep::Run),
            RawCiItem::Group(group) => resolve_group(group, names, sink).map(CiStep::Group),
        })
        .collect()
}

fn check_not_empty(span: &Span, len: usize, owner: &str, sink: &mut Sink<'_>) {
    if len == 0 {
        sink.error_hint(
            span,
            format!("{} must not be empty", raw::subject("steps", owner)),
            format!("add at least one step, e.g. steps = [{STEP_EXAMPLE}]"),
        );
    }
}

fn resolve_group(
    raw: RawCiGroup,
    names: &mut BTreeMap<String, String>,
    sink: &mut Sink<'_>,
) -> Option<CiGroup> {
    let name = raw
        .name
        .as_ref()
        .and_then(|n| check_step_name(n, "group", &raw.ctx, names, sink));
    let parallel = int_in(
        raw.parallel,
        &raw.ctx,
        "parallel",
        1..=MAX_PARALLEL,
        1,
        sink,
    );
    let steps = raw.steps.map(|steps| {
        let owner = match &name {
            Some(name) => format!("group `{name}`"),
            None => raw.ctx.clone(),
        };
        check_not_empty(&steps.span, steps.len, &owner, sink);
        steps
            .items
            .into_iter()
            .filter_map(|item| match item {
                RawCiItem::Step(step) => resolve_run(step, names, sink),
                // `raw` reports groups in groups and never keeps them.
                RawCiItem::Group(_) => None,
            })
            .collect()
    });
    Some(CiGroup {
        name: name?,
        parallel,
        steps: steps?,
    })
}

fn resolve_run(
    raw: RawCiStep,
    names: &mut BTreeMap<String, String>,
    sink: &mut Sink<'_>,
) -> Option<CiRun> {
    let name = raw
        .name
        .as_ref()
        .and_then(|n| check_step_name(n, "name", &raw.ctx, names, sink));
    let run = raw.run.and_then(|run| {
        if run.value.trim().is_empty() {
            sink.error_hint(
                &run.span,
                format!("{} must not be empty", raw::subject("run", &raw.ctx)),
                "give the shell command of the step, e.g. run = \"bin/rails test\"",
            );
            return None;
        }
        Some(run.value)
    });
    Some(CiRun {
        name: name?,
        run: run?,
    })
}

/// A step's `name` or a group's `group`: `None` after reporting why not.
fn check_step_name(
    name: &Sp<String>,
    key: &str,
    ctx: &str,
    names: &mut BTreeMap<String, String>,
    sink: &mut Sink<'_>,
) -> Option<String> {
    let what = raw::subject(key, ctx);
    let value = &name.value;
    if value.trim().is_empty() {
        sink.error_hint(
            &name.span,
            format!("{what} must not be empty"),
            "give it a name, shown in the output and picked with `wharf ci --step NAME`",
        );
        return None;
    }
    if value.chars().any(char::is_control) {
        sink.error(
            &name.span,
            format!("{what} must be one line of text, found {value:?}"),
        );
        return None;
    }
    if value.trim() != value {
        sink.error_hint(
            &name.span,
            format!("{what} must not start or end with spaces, found {value:?}"),
            format!("write {:?}", value.trim()),
        );
        return None;
    }
    if let Some(first) = names.get(value) {
        sink.error_hint(
            &name.span,
            format!("{what} is {value:?}, the name of {first} too"),
            "names of steps and groups must be unique: `wharf ci --step NAME` picks one by its name",
        );
        return None;
    }
    names.insert(value.clone(), ctx.to_string());
    Some(value.clone())
}

/// `[deploy] branch`: a branch name as git allows it (`git
/// check-ref-format --branch`), without `refs/heads/`.
pub(super) fn resolve_branch(raw: Sp<String>, sink: &mut Sink<'_>) -> Option<String> {
    let what = raw::subject("branch", "[deploy]");
    if let Some(problem) = branch_problem(&raw.value) {
        let hint = match raw.value.strip_prefix("refs/heads/") {
            Some(short) if branch_problem(short).is_none() => format!("write branch = {short:?}"),
            _ => "write the name of the branch whose pushes deploy, e.g. branch = \"main\"".into(),
        };
        sink.error_hint(
            &raw.span,
            format!("{what} {problem}, found {:?}", raw.value),
            hint,
        );
        return None;
    }
    Some(raw.value)
}

/// Why `name` is not a branch name git accepts, if it is not.
fn branch_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("must not be empty");
    }
    if name.starts_with("refs/") {
        return Some("must be a branch name, not a ref");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("must not contain spaces");
    }
    if name
        .chars()
        .any(|c| matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return Some("must not contain `~ ^ : ? * [ \\`");
    }
    if name.starts_with('-') {
        return Some("must not start with `-`");
    }
    if name == "@" || name.contains("@{") || name.contains("..") {
        return Some("must not be `@` or contain `..` or `@{`");
    }
    let bad_component = name
        .split('/')
        .any(|c| c.is_empty() || c.starts_with('.') || c.ends_with(".lock") || c.ends_with('.'));
    if bad_component {
        return Some(
            "must be `/`-separated parts, none empty, starting with `.`, or ending with `.` or `.lock`",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names() {
        for ok in ["main", "release/1.2", "feature/x-y_z", "v1", "a.b", "ünï"] {
            assert_eq!(branch_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "refs/heads/main",
            "a b",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[b",
            "a\\b",
            "-x",
            "@",
            "a@{1}",
            "a..b",
            "/a",
            "a/",
            "a//b",
            ".a",
            "a/.b",
            "a.lock",
            "a.",
            "a\tb",
        ] {
            assert!(branch_problem(bad).is_some(), "{bad:?}");
        }
    }
}
