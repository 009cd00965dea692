//! A run for people, in the shape of Rails' `bin/ci`:
//!
//! ```text
//! CI for shop
//! 4 steps: Setup, Checks (Style, Audit), Tests
//!
//!
//! Setup
//! bin/setup --skip-server
//!
//! (the step's output, live)
//!
//! ✅ Setup passed in 0.52s
//!
//!
//! Checks
//! 2 steps, 2 at a time
//!
//!
//! Style
//! bin/rubocop
//!
//! (its output, shown whole when it ends)
//!
//! ❌ Style failed in 1m3.25s
//!
//!
//! Audit
//! …
//! ✅ Audit passed in 0.40s
//!
//! ❌ Checks failed in 1m3.26s
//!
//! …
//! ✅ Tests passed in 2.10s
//!    ↳ Style failed
//!
//! ❌ CI for shop failed in 1m6.02s
//! ```
//!
//! Every function here is pure; [`Human`] writes to any `io::Write`.
//! Colors (Rails' own) only when asked for: the caller knows whether its
//! output is a terminal.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use crate::report::{Report, Status, StepReport};
use crate::select;
use crate::sink::{GroupEnd, GroupStart, RunStart, Sink, StepStart};

/// A duration as Rails' `bin/ci` writes it: seconds with two decimals,
/// minutes before them once there are any (`0.52s`, `12.00s`, `1m3.25s`,
/// `61m0.00s`). Rounded to the hundredth first, so 59.999s is `1m0.00s`,
/// never `60.00s`.
pub fn format_duration(d: Duration) -> String {
    format_ms(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// [`format_duration`] of milliseconds.
pub fn format_ms(ms: u64) -> String {
    let centis = ms / 10 + u64::from(ms % 10 >= 5);
    let (minutes, centis) = (centis / 6000, centis % 6000);
    let seconds = format!("{}.{:02}s", centis / 100, centis % 100);
    if minutes > 0 {
        format!("{minutes}m{seconds}")
    } else {
        seconds
    }
}

/// The line that ends a step: `✅ Setup passed in 0.52s`,
/// `❌ Tests failed in 1m3.25s`, and why when it is not its exit code.
pub fn step_line(step: &StepReport) -> String {
    let name = &step.name;
    let took = format_ms(step.duration_ms);
    match step.status {
        Status::Passed => format!("✅ {name} passed in {took}"),
        Status::Failed => {
            let mut line = format!("❌ {name} failed in {took}");
            if let Some(signal) = step.signal {
                line.push_str(&format!(" (killed by signal {signal})"));
            }
            if let Some(error) = &step.error {
                line.push_str(&format!(": {error}"));
            }
            line
        }
        Status::Stopped => {
            format!("❌ {name} stopped after {took}: another step failed (--fail-fast)")
        }
        Status::Interrupted => format!("❌ {name} interrupted after {took}"),
        Status::Skipped => format!("{name} skipped"),
    }
}

/// The line that ends a group: `✅ Checks passed in 1.02s`.
pub fn group_line(group: &GroupEnd<'_>) -> String {
    let took = format_ms(group.duration_ms);
    if group.ok {
        format!("✅ {} passed in {took}", group.name)
    } else {
        format!("❌ {} failed in {took}", group.name)
    }
}

/// The end of a run: one `   ↳` line per step that did not pass (those
/// not run together), a blank line, and the result of the whole run.
pub fn summary(title: &str, report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    for step in &report.steps {
        match step.status {
            Status::Failed => lines.push(format!("   ↳ {} failed", step.name)),
            Status::Stopped => lines.push(format!("   ↳ {} stopped (--fail-fast)", step.name)),
            Status::Interrupted => lines.push(format!("   ↳ {} interrupted", step.name)),
            Status::Passed | Status::Skipped => {}
        }
    }
    let skipped: Vec<&str> = report
        .with_status(Status::Skipped)
        .map(|s| s.name.as_str())
        .collect();
    if !skipped.is_empty() {
        lines.push(format!("   ↳ not run: {}", skipped.join(", ")));
    }
    lines.push(String::new());
    let took = format_ms(report.duration_ms);
    lines.push(if report.ok {
        format!("✅ {title} passed in {took}")
    } else if report.interrupted {
        format!("❌ {title} interrupted after {took}")
    } else {
        format!("❌ {title} failed in {took}")
    });
    lines
}

/// `4 steps: Setup, Checks (Style, Audit), Tests`, or `1 of 4 steps: …`
/// when `--step` picked some.
pub fn plan_line(run: &RunStart<'_>) -> String {
    let n = select::count(run.steps);
    let noun = if run.total == 1 { "step" } else { "steps" };
    let count = if n == run.total {
        format!("{n} {noun}")
    } else {
        format!("{n} of {} {noun}", run.total)
    };
    format!("{count}: {}", select::describe(run.steps))
}

/// `2 steps, 2 at a time`, `3 steps, one after the other`, `1 step`.
pub fn group_plan_line(group: &GroupStart<'_>) -> String {
    match (group.steps, group.parallel) {
        (1, _) => "1 step".to_string(),
        (n, 1) => format!("{n} steps, one after the other"),
        (n, p) => format!("{n} steps, {p} at a time"),
    }
}

/// Rails' colors.
#[derive(Debug, Clone, Copy)]
enum Style {
    Banner,
    Title,
    Subtitle,
    Error,
    Success,
    Plain,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Banner | Style::Success => "\x1b[1;32m",
            Style::Title => "\x1b[1;35m",
            Style::Subtitle => "\x1b[1;90m",
            Style::Error => "\x1b[1;31m",
            Style::Plain => "",
        }
    }

    fn of(ok: bool) -> Style {
        if ok { Style::Success } else { Style::Error }
    }
}

/// A step whose output is held until it ends.
#[derive(Debug)]
struct Held {
    run: String,
    lines: Vec<String>,
}

/// Writes a run for people (see the module's docs). Write errors are
/// ignored: a closed pipe must not stop the run.
#[derive(Debug)]
pub struct Human<W: Write> {
    out: W,
    title: String,
    color: bool,
    /// Steps shown whole when they end, by name.
    held: HashMap<String, Held>,
    /// Whether the current live step has printed output yet.
    live_output: bool,
}

impl<W: Write> Human<W> {
    /// `title` names the run in its first and last lines, e.g. "CI for shop".
    pub fn new(out: W, title: impl Into<String>, color: bool) -> Human<W> {
        Human {
            out,
            title: title.into(),
            color,
            held: HashMap::new(),
            live_output: false,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn line(&mut self, style: Style, text: &str) {
        let result = if self.color && !matches!(style, Style::Plain) && !text.is_empty() {
            writeln!(self.out, "{}{text}\x1b[0m", style.code())
        } else {
            writeln!(self.out, "{text}")
        };
        let _ = result;
    }

    fn heading(&mut self, title: &str, subtitle: &str) {
        self.line(Style::Plain, "");
        self.line(Style::Plain, "");
        self.line(Style::Title, title);
        for line in subtitle.lines() {
            self.line(Style::Subtitle, line);
        }
        self.line(Style::Plain, "");
    }

    fn result(&mut self, step: &StepReport, had_output: bool) {
        if had_output {
            self.line(Style::Plain, "");
        }
        self.line(Style::of(step.ok), &step_line(step));
        let _ = self.out.flush();
    }
}

impl<W: Write> Sink for Human<W> {
    fn run_started(&mut self, run: &RunStart<'_>) {
        let title = self.title.clone();
        self.line(Style::Banner, &title);
        self.line(Style::Subtitle, &plan_line(run));
        let _ = self.out.flush();
    }

    fn group_started(&mut self, group: &GroupStart<'_>) {
        self.line(Style::Plain, "");
        self.line(Style::Plain, "");
        self.line(Style::Title, group.name);
        self.line(Style::Subtitle, &group_plan_line(group));
        let _ = self.out.flush();
    }

    fn step_started(&mut self, step: &StepStart<'_>) {
        if step.replay {
            self.held.insert(
                step.name.to_string(),
                Held {
                    run: step.run.to_string(),
                    lines: Vec::new(),
                },
            );
        } else {
            self.heading(step.name, step.run);
            self.live_output = false;
            let _ = self.out.flush();
        }
    }

    fn output(&mut self, step: &str, line: &str) {
        match self.held.get_mut(step) {
            Some(held) => held.lines.push(line.to_string()),
            None => {
                self.live_output = true;
                self.line(Style::Plain, line);
            }
        }
    }

    fn step_finished(&mut self, step: &StepReport) {
        match self.held.remove(&step.name) {
            Some(held) => {
                self.heading(&step.name, &held.run);
                for line in &held.lines {
                    self.line(Style::Plain, line);
                }
                self.result(step, !held.lines.is_empty());
            }
            None => {
                let had_output = self.live_output;
                self.result(step, had_output);
            }
        }
    }

    fn group_finished(&mut self, group: &GroupEnd<'_>) {
        self.line(Style::Plain, "");
        self.line(Style::of(group.ok), &group_line(group));
        let _ = self.out.flush();
    }

    fn run_finished(&mut self, report: &Report) {
        let lines = summary(&self.title, report);
        let last = lines.len().saturating_sub(1);
        for (i, line) in lines.iter().enumerate() {
            let style = if i == last {
                Style::of(report.ok)
            } else if line.is_empty() {
                Style::Plain
            } else {
                Style::Error
            };
            self.line(style, line);
        }
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use wharf_config::{CiGroup, CiRun, CiStep};

    fn ms(ms: u64) -> String {
        format_ms(ms)
    }

    #[test]
    fn durations_as_rails_writes_them() {
        assert_eq!(ms(0), "0.00s");
        assert_eq!(ms(4), "0.00s");
        assert_eq!(ms(5), "0.01s");
        assert_eq!(ms(520), "0.52s");
        assert_eq!(ms(12_000), "12.00s");
        assert_eq!(ms(59_994), "59.99s");
        assert_eq!(ms(59_995), "1m0.00s");
        assert_eq!(ms(60_000), "1m0.00s");
        assert_eq!(ms(63_250), "1m3.25s");
        assert_eq!(ms(3_600_000), "60m0.00s");
        assert_eq!(ms(3_661_010), "61m1.01s");
        assert_eq!(format_duration(Duration::from_micros(840_100)), "0.84s");
        assert_eq!(format_duration(Duration::MAX), format_ms(u64::MAX));
    }

    fn report(name: &str, group: Option<&str>, status: Status, ms: u64) -> StepReport {
        StepReport {
            status,
            ok: status == Status::Passed,
            exit_code: match status {
                Status::Passed => Some(0),
                Status::Failed => Some(1),
                _ => None,
            },
            duration_ms: ms,
            ..StepReport::skipped(name, group, &format!("bin/{}", name.to_lowercase()))
        }
    }

    #[test]
    fn step_lines() {
        let passed = report("Setup", None, Status::Passed, 520);
        assert_eq!(step_line(&passed), "✅ Setup passed in 0.52s");
        let failed = report("Tests", None, Status::Failed, 63_250);
        assert_eq!(step_line(&failed), "❌ Tests failed in 1m3.25s");
        let killed = StepReport {
            signal: Some(9),
            exit_code: None,
            ..failed.clone()
        };
        assert_eq!(
            step_line(&killed),
            "❌ Tests failed in 1m3.25s (killed by signal 9)"
        );
        let unstartable = StepReport {
            error: Some("could not start /bin/nosh: No such file or directory".into()),
            exit_code: None,
            duration_ms: 0,
            ..failed
        };
        assert_eq!(
            step_line(&unstartable),
            "❌ Tests failed in 0.00s: could not start /bin/nosh: No such file or directory"
        );
        assert_eq!(
            step_line(&report("Audit", Some("Checks"), Status::Stopped, 400)),
            "❌ Audit stopped after 0.40s: another step failed (--fail-fast)"
        );
        assert_eq!(
            step_line(&report("Audit", None, Status::Interrupted, 400)),
            "❌ Audit interrupted after 0.40s"
        );
    }

    #[test]
    fn summaries() {
        let passed = Report::new(vec![report("Setup", None, Status::Passed, 520)], false, 530);
        assert_eq!(
            summary("CI for shop", &passed),
            ["", "✅ CI for shop passed in 0.53s"]
        );
        let failed = Report::new(
            vec![
                report("Setup", None, Status::Passed, 520),
                report("Style", Some("Checks"), Status::Failed, 100),
                report("Audit", Some("Checks"), Status::Stopped, 90),
                report("Tests", None, Status::Skipped, 0),
                report("Deploy", None, Status::Skipped, 0),
            ],
            false,
            63_250,
        );
        insta::assert_snapshot!(summary("CI for shop", &failed).join("\n"), @r"
           ↳ Style failed
           ↳ Audit stopped (--fail-fast)
           ↳ not run: Tests, Deploy

        ❌ CI for shop failed in 1m3.25s
        ");
        let interrupted = Report::new(
            vec![
                report("Setup", None, Status::Interrupted, 520),
                report("Tests", None, Status::Skipped, 0),
            ],
            true,
            600,
        );
        insta::assert_snapshot!(summary("CI for shop", &interrupted).join("\n"), @r"
           ↳ Setup interrupted
           ↳ not run: Tests

        ❌ CI for shop interrupted after 0.60s
        ");
    }

    fn plan() -> Vec<CiStep> {
        let run = |name: &str, run: &str| CiRun {
            name: name.into(),
            run: run.into(),
        };
        vec![
            CiStep::Run(run("Setup", "bin/setup --skip-server")),
            CiStep::Group(CiGroup {
                name: "Checks".into(),
                parallel: 3,
                steps: vec![
                    run("Style", "bin/rubocop"),
                    run("Audit", "bin/bundler-audit"),
                ],
            }),
            CiStep::Run(run("Tests", "bin/rails test")),
        ]
    }

    /// A whole run through [`Human`], events as the runner sends them (the
    /// parallel steps' lines interleaved).
    fn render(color: bool) -> String {
        let steps = plan();
        let mut human = Human::new(Vec::new(), "CI for shop", color);
        let start = |name, group, run, replay| StepStart {
            name,
            group,
            run,
            replay,
        };
        human.run_started(&RunStart {
            steps: &steps,
            total: 4,
        });
        human.step_started(&start("Setup", None, "bin/setup --skip-server", false));
        human.output("Setup", "== Installing dependencies ==");
        human.output("Setup", "The Gemfile's dependencies are satisfied");
        let setup = report("Setup", None, Status::Passed, 1520);
        human.step_finished(&setup);
        human.group_started(&GroupStart {
            name: "Checks",
            parallel: 2,
            steps: 2,
        });
        human.step_started(&start("Style", Some("Checks"), "bin/rubocop", true));
        human.step_started(&start("Audit", Some("Checks"), "bin/bundler-audit", true));
        human.output("Audit", "audit 1");
        human.output("Style", "style 1");
        human.output("Audit", "audit 2");
        let audit = report("Audit", Some("Checks"), Status::Failed, 400);
        human.step_finished(&audit);
        human.output("Style", "style 2");
        let style = report("Style", Some("Checks"), Status::Passed, 63_250);
        human.step_finished(&style);
        let group = [audit.clone(), style.clone()];
        human.group_finished(&GroupEnd {
            name: "Checks",
            ok: false,
            steps: &group,
            duration_ms: 63_260,
        });
        human.step_started(&start("Tests", None, "bin/rails test", false));
        let tests = report("Tests", None, Status::Passed, 2100);
        human.step_finished(&tests);
        human.run_finished(&Report::new(
            vec![setup, style, audit, tests],
            false,
            66_020,
        ));
        String::from_utf8(human.into_inner()).unwrap()
    }

    #[test]
    fn a_whole_run_for_people() {
        insta::assert_snapshot!(render(false));
    }

    #[test]
    fn colors_only_when_asked() {
        let colored = render(true);
        assert!(colored.contains("\x1b[1;35mSetup\x1b[0m\n"));
        assert!(colored.contains("\x1b[1;31m❌ Audit failed in 0.40s\x1b[0m\n"));
        assert!(colored.contains("\x1b[1;32m✅ Tests passed in 2.10s\x1b[0m\n"));
        // Output lines are the step's own.
        assert!(colored.contains("\naudit 1\n"));
        assert!(!render(false).contains('\x1b'));
    }
}
