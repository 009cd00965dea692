//! The runner on real `sh` steps: exit codes, signals, fail-fast (in order
//! and in a parallel group), parallel groups whose output never
//! interleaves, masking, cancelling, selection, and the whole output for
//! people (timings redacted).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use wharf_ci::{
    GroupEnd, GroupStart, Human, Options, Report, RunStart, Sink, Status, StepReport, StepStart,
};
use wharf_config::{CiGroup, CiRun, CiStep};

fn step(name: &str, run: &str) -> CiStep {
    CiStep::Run(CiRun {
        name: name.into(),
        run: run.into(),
    })
}

fn group(name: &str, parallel: u32, steps: &[(&str, &str)]) -> CiStep {
    CiStep::Group(CiGroup {
        name: name.into(),
        parallel,
        steps: steps
            .iter()
            .map(|(name, run)| CiRun {
                name: (*name).into(),
                run: (*run).into(),
            })
            .collect(),
    })
}

/// Every event, one line each, in the order the sink got them; and the
/// same run written for people.
struct Recorder {
    events: Vec<String>,
    human: Human<Vec<u8>>,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            events: Vec::new(),
            human: Human::new(Vec::new(), "CI for shop", false),
        }
    }

    fn text(self) -> String {
        String::from_utf8(self.human.into_inner()).unwrap()
    }

    /// The lines step `name` printed, in order.
    fn lines_of(&self, name: &str) -> Vec<String> {
        let prefix = format!("line {name}: ");
        self.events
            .iter()
            .filter_map(|e| e.strip_prefix(&prefix).map(str::to_string))
            .collect()
    }
}

impl Sink for Recorder {
    fn run_started(&mut self, run: &RunStart<'_>) {
        self.events.push(format!("run {}", run.total));
        self.human.run_started(run);
    }
    fn group_started(&mut self, group: &GroupStart<'_>) {
        self.events.push(format!("group {}", group.name));
        self.human.group_started(group);
    }
    fn step_started(&mut self, step: &StepStart<'_>) {
        self.events
            .push(format!("start {} replay={}", step.name, step.replay));
        self.human.step_started(step);
    }
    fn output(&mut self, step: &str, line: &str) {
        self.events.push(format!("line {step}: {line}"));
        self.human.output(step, line);
    }
    fn step_finished(&mut self, step: &StepReport) {
        self.events
            .push(format!("end {} {}", step.name, step.status.as_str()));
        self.human.step_finished(step);
    }
    fn group_finished(&mut self, group: &GroupEnd<'_>) {
        self.events
            .push(format!("group end {} {}", group.name, group.ok));
        self.human.group_finished(group);
    }
    fn run_finished(&mut self, report: &Report) {
        self.events.push(format!("run end {}", report.ok));
        self.human.run_finished(report);
    }
}

struct Run {
    report: Report,
    recorder: Recorder,
    took: Duration,
    _dir: tempfile::TempDir,
}

fn options(dir: &tempfile::TempDir) -> Options {
    let mut opts = Options::new(dir.path());
    opts.stop_timeout = Duration::from_secs(2);
    opts
}

async fn run_with(steps: &[CiStep], tweak: impl FnOnce(&mut Options)) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&dir);
    tweak(&mut opts);
    let mut recorder = Recorder::new();
    let started = Instant::now();
    let report = wharf_ci::run(steps, &opts, &mut recorder).await.unwrap();
    Run {
        report,
        recorder,
        took: started.elapsed(),
        _dir: dir,
    }
}

fn statuses(report: &Report) -> Vec<(&str, Status)> {
    report
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect()
}

/// The output for people with every timing replaced by `[time]`.
fn redacted(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(&redact_line(line));
        out.push('\n');
    }
    out
}

fn redact_line(line: &str) -> String {
    // `… in 1m3.25s` / `… after 0.40s`: the last word is a timing.
    for marker in [" in ", " after "] {
        if let Some(at) = line.rfind(marker) {
            let (head, tail) = line.split_at(at + marker.len());
            let (time, rest) = tail
                .split_once([' ', ':'])
                .map_or((tail, ""), |(t, _)| (t, &tail[t.len()..]));
            if time.ends_with('s') && time.chars().any(|c| c.is_ascii_digit()) {
                return format!("{head}[time]{rest}");
            }
        }
    }
    line.to_string()
}

#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    let run = run_with(
        &[
            step("Passes", "true"),
            step("Exits 3", "echo about to fail; exit 3"),
            step("Killed", "kill -9 $$"),
            step("Not found", "./no-such-script 2>/dev/null"),
        ],
        |_| {},
    )
    .await;
    let report = &run.report;
    assert!(!report.ok);
    assert!(!report.interrupted);
    assert_eq!(
        statuses(report),
        [
            ("Passes", Status::Passed),
            ("Exits 3", Status::Failed),
            ("Killed", Status::Failed),
            ("Not found", Status::Failed)
        ]
    );
    assert_eq!(report.steps[0].exit_code, Some(0));
    assert_eq!(report.steps[1].exit_code, Some(3));
    assert_eq!(report.steps[2].exit_code, None);
    assert_eq!(report.steps[2].signal, Some(9));
    assert_eq!(report.steps[3].exit_code, Some(127));
    // Without --fail-fast every step runs, each live in turn.
    insta::assert_snapshot!(redacted(&run.recorder.text()));
}

#[tokio::test]
async fn all_passing_is_ok() {
    let run = run_with(&[step("One", "echo one"), step("Two", "echo two")], |_| {}).await;
    assert!(run.report.ok);
    assert!(run.report.steps.iter().all(|s| s.ok));
    assert_eq!(
        run.recorder.events.last().map(String::as_str),
        Some("run end true")
    );
}

#[tokio::test]
async fn fail_fast_skips_the_steps_after_the_first_failure() {
    let run = run_with(
        &[
            step("Setup", "echo setting up"),
            step("Style", "echo bad style; exit 1"),
            group(
                "Checks",
                2,
                &[("Audit", "echo audit"), ("Lint", "echo lint")],
            ),
            step("Tests", "echo never"),
        ],
        |o| o.fail_fast = true,
    )
    .await;
    assert_eq!(
        statuses(&run.report),
        [
            ("Setup", Status::Passed),
            ("Style", Status::Failed),
            ("Audit", Status::Skipped),
            ("Lint", Status::Skipped),
            ("Tests", Status::Skipped)
        ]
    );
    assert!(run.recorder.lines_of("Tests").is_empty());
    insta::assert_snapshot!(redacted(&run.recorder.text()));
}

/// Three steps print a line every 0.1s, all at once: the sink sees their
/// lines interleaved as they come (so they did run together), and the
/// output for people shows each step's lines together, never mixed.
#[tokio::test]
async fn a_parallel_group_never_interleaves_its_output() {
    let printer = |tag: &str| {
        format!("for i in 1 2 3 4; do echo {tag} line $i; sleep 0.1; done; echo {tag} done >&2")
    };
    let (a, b, c) = (printer("A"), printer("B"), printer("C"));
    let run = run_with(
        &[
            step("Before", "echo before"),
            group("Checks", 3, &[("A", &a), ("B", &b), ("C", &c)]),
            step("After", "echo after"),
        ],
        |_| {},
    )
    .await;
    assert!(run.report.ok, "{:#?}", run.report);
    // Together, not one after the other (3 x 0.4s).
    let group_ms: u64 = ["A", "B", "C"]
        .iter()
        .map(|n| {
            run.report
                .steps
                .iter()
                .find(|s| s.name == *n)
                .unwrap()
                .duration_ms
        })
        .max()
        .unwrap();
    assert!(group_ms >= 400, "{group_ms}");
    // The sink saw them mixed…
    let live: Vec<&String> = run
        .recorder
        .events
        .iter()
        .filter(|e| e.starts_with("line A") || e.starts_with("line B") || e.starts_with("line C"))
        .collect();
    let switches = live
        .windows(2)
        .filter(|w| w[0].get(..6) != w[1].get(..6))
        .count();
    assert!(switches > 2, "the steps did not run together: {live:#?}");
    for tag in ["A", "B", "C"] {
        assert_eq!(
            run.recorder.lines_of(tag),
            [
                format!("{tag} line 1"),
                format!("{tag} line 2"),
                format!("{tag} line 3"),
                format!("{tag} line 4"),
                format!("{tag} done")
            ]
        );
    }
    assert!(
        run.recorder
            .events
            .iter()
            .any(|e| e == "start A replay=true")
    );
    assert!(
        run.recorder
            .events
            .iter()
            .any(|e| e == "start Before replay=false")
    );
    // …and people see each whole: every step's five lines in one block.
    let text = run.recorder.text();
    for tag in ["A", "B", "C"] {
        let block: String = (1..=4)
            .map(|i| format!("{tag} line {i}\n"))
            .chain([format!("{tag} done\n")])
            .collect();
        assert!(text.contains(&block), "{tag} is not in one block:\n{text}");
    }
    // The order they finished in is not fixed: snapshot one step's block
    // and the lines around the group.
    let redacted = redacted(&text);
    let head: String = redacted
        .split_inclusive('\n')
        .take_while(|l| !l.starts_with("A\n") && !l.starts_with("B\n") && !l.starts_with("C\n"))
        .collect();
    let tail = &redacted[redacted.find("✅ Checks").unwrap()..];
    insta::assert_snapshot!(format!("{head}…\n{tail}"));
}

/// With --fail-fast, a failure in a parallel group stops its siblings at
/// once (their output so far shown) and skips what is left.
#[tokio::test]
async fn fail_fast_stops_running_siblings() {
    let run = run_with(
        &[group(
            "Checks",
            2,
            &[
                ("Fails", "sleep 0.3; echo broken; exit 1"),
                ("Slow", "echo working; sleep 30; echo finished"),
                ("Queued", "echo never"),
            ],
        )],
        |o| o.fail_fast = true,
    )
    .await;
    assert!(run.took < Duration::from_secs(5), "took {:?}", run.took);
    assert_eq!(
        statuses(&run.report),
        [
            ("Fails", Status::Failed),
            ("Slow", Status::Stopped),
            ("Queued", Status::Skipped)
        ]
    );
    assert_eq!(run.recorder.lines_of("Slow"), ["working"]);
    assert_eq!(run.report.steps[1].signal, Some(15));
    insta::assert_snapshot!(redacted(&run.recorder.text()));
}

/// Without --fail-fast, a parallel group runs every step even after one
/// failed, and the run goes on.
#[tokio::test]
async fn without_fail_fast_a_failure_does_not_stop_the_others() {
    let run = run_with(
        &[
            group(
                "Checks",
                2,
                &[
                    ("Fails", "exit 1"),
                    ("Slow", "sleep 0.3; echo finished"),
                    ("Queued", "echo queued"),
                ],
            ),
            step("Tests", "echo tests"),
        ],
        |_| {},
    )
    .await;
    assert_eq!(
        statuses(&run.report),
        [
            ("Fails", Status::Failed),
            ("Slow", Status::Passed),
            ("Queued", Status::Passed),
            ("Tests", Status::Passed)
        ]
    );
}

#[tokio::test]
async fn secrets_are_masked_in_stdout_and_stderr() {
    let run = run_with(
        &[step(
            "Leaky",
            "echo token=s3cr3t-token; echo \"pw: $DB_PASSWORD\" >&2; echo short: abc",
        )],
        |o| {
            o.env.push(("DB_PASSWORD".into(), "hunter2hunter2".into()));
            o.secrets = vec!["s3cr3t-token".into(), "hunter2hunter2".into(), "abc".into()];
        },
    )
    .await;
    assert_eq!(
        run.recorder.lines_of("Leaky"),
        ["token=[masked]", "pw: [masked]", "short: abc"]
    );
    assert!(!run.recorder.text().contains("s3cr3t"));
}

#[tokio::test]
async fn stdout_and_stderr_keep_their_order() {
    let run = run_with(
        &[step(
            "Mixed",
            "echo out 1; echo err 1 >&2; echo out 2; echo err 2 >&2; printf 'no newline'",
        )],
        |_| {},
    )
    .await;
    assert_eq!(
        run.recorder.lines_of("Mixed"),
        ["out 1", "err 1", "out 2", "err 2", "no newline"]
    );
}

#[tokio::test]
async fn steps_run_in_the_checkout_with_ci_set() {
    let run = run_with(
        &[step(
            "Env",
            "pwd; echo CI=$CI; echo EXTRA=$EXTRA; echo HOME=${HOME:+set}",
        )],
        |o| o.env.push(("EXTRA".into(), "1".into())),
    )
    .await;
    let dir = run._dir.path().canonicalize().unwrap();
    assert_eq!(
        run.recorder.lines_of("Env"),
        [
            dir.display().to_string(),
            "CI=true".into(),
            "EXTRA=1".into(),
            "HOME=set".into()
        ]
    );
    let clean = run_with(&[step("Env", "echo HOME=${HOME:-unset}")], |o| {
        o.inherit_env = false;
    })
    .await;
    assert_eq!(clean.recorder.lines_of("Env"), ["HOME=unset"]);
}

/// A step that leaves a process holding its output still ends.
#[tokio::test]
async fn a_background_process_does_not_hold_the_step() {
    let run = run_with(&[step("Daemon", "sleep 60 & echo started")], |_| {}).await;
    assert!(run.report.ok);
    assert!(run.took < Duration::from_secs(8), "took {:?}", run.took);
    assert_eq!(run.recorder.lines_of("Daemon"), ["started"]);
}

#[tokio::test]
async fn cancelling_interrupts_the_running_step_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&dir);
    let cancel = opts.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    let mut recorder = Recorder::new();
    let started = Instant::now();
    let report = wharf_ci::run(
        &[
            step("Setup", "echo ok"),
            step("Tests", "echo testing; sleep 30"),
            step("After", "echo never"),
        ],
        &opts,
        &mut recorder,
    )
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(report.interrupted);
    assert!(!report.ok);
    assert_eq!(
        statuses(&report),
        [
            ("Setup", Status::Passed),
            ("Tests", Status::Interrupted),
            ("After", Status::Skipped)
        ]
    );
    insta::assert_snapshot!(redacted(&recorder.text()));
}

#[tokio::test]
async fn only_runs_the_named_steps() {
    let steps = [
        step("Setup", "echo setup"),
        group(
            "Checks",
            2,
            &[("Style", "echo style"), ("Audit", "echo audit")],
        ),
        step("Tests", "echo tests"),
    ];
    let run = run_with(&steps, |o| o.only = vec!["Audit".into(), "Tests".into()]).await;
    assert_eq!(
        statuses(&run.report),
        [("Audit", Status::Passed), ("Tests", Status::Passed)]
    );
    assert_eq!(run.report.steps[0].group.as_deref(), Some("Checks"));
    // One step of a group runs alone: live.
    assert!(
        run.recorder
            .events
            .iter()
            .any(|e| e == "start Audit replay=false")
    );
    assert!(
        run.recorder
            .text()
            .starts_with("CI for shop\n2 of 4 steps: Checks (Audit), Tests\n")
    );

    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&dir);
    opts.only = vec!["Test".into()];
    let error = wharf_ci::run(&steps, &opts, &mut wharf_ci::NullSink)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "no step or group named \"Test\" in [ci]; did you mean \"Tests\"? the steps are Setup, Checks (Style, Audit), Tests"
    );
}

#[tokio::test]
async fn a_step_that_cannot_start_fails_with_why() {
    let run = run_with(&[step("Shell", "true"), step("Next", "true")], |o| {
        o.shell = "/no/such/shell".into();
    })
    .await;
    let first = &run.report.steps[0];
    assert_eq!(first.status, Status::Failed);
    assert_eq!(first.exit_code, None);
    let error = first.error.as_deref().unwrap();
    assert!(
        error.starts_with("could not start /no/such/shell in "),
        "{error}"
    );
    let missing = run_with(&[step("Dir", "true")], |o| {
        o.cwd = "/no/such/dir".into();
    })
    .await;
    assert_eq!(
        missing.report.steps[0].error.as_deref(),
        Some("could not start /bin/sh in /no/such/dir: no such directory")
    );
}
