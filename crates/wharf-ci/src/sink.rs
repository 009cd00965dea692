//! Where a run goes as it happens: [`Sink`] gets every event, in order,
//! from one task (it need not be `Send`).
//!
//! For each step: [`Sink::step_started`], its output lines (already
//! masked) as they come, then [`Sink::step_finished`]. Steps of a parallel
//! group overlap, so their events interleave; each carries the step's name
//! (unique in a run), and [`StepStart::replay`] says the step's output
//! should be shown whole when it ends. [`crate::Human`] does that for
//! people; the server keeps a log per step.

use wharf_config::CiStep;

use crate::report::{Report, StepReport};

/// The run is about to start.
#[derive(Debug, Clone, Copy)]
pub struct RunStart<'a> {
    /// The steps that will run (after `--step`).
    pub steps: &'a [CiStep],
    /// How many steps `[ci]` has in all.
    pub total: usize,
}

/// A group is about to start.
#[derive(Debug, Clone, Copy)]
pub struct GroupStart<'a> {
    pub name: &'a str,
    /// How many of its steps run at once (never more than it has).
    pub parallel: usize,
    /// How many steps it runs.
    pub steps: usize,
}

/// A group ended (its steps all ended, or were skipped).
#[derive(Debug, Clone, Copy)]
pub struct GroupEnd<'a> {
    pub name: &'a str,
    /// Every step of it passed.
    pub ok: bool,
    /// Its steps' reports, in order (those that never started skipped).
    pub steps: &'a [StepReport],
    /// From its first step's start to its last step's end.
    pub duration_ms: u64,
}

/// A step is starting.
#[derive(Debug, Clone, Copy)]
pub struct StepStart<'a> {
    pub name: &'a str,
    pub group: Option<&'a str>,
    /// Its command.
    pub run: &'a str,
    /// It runs beside other steps: show its output whole when it ends.
    pub replay: bool,
}

/// Gets a run's events. Every method has an empty default.
pub trait Sink {
    fn run_started(&mut self, _run: &RunStart<'_>) {}
    fn group_started(&mut self, _group: &GroupStart<'_>) {}
    fn step_started(&mut self, _step: &StepStart<'_>) {}
    /// One line of a step's output (stdout and stderr, as it wrote them),
    /// masked, without its line end.
    fn output(&mut self, _step: &str, _line: &str) {}
    fn step_finished(&mut self, _step: &StepReport) {}
    fn group_finished(&mut self, _group: &GroupEnd<'_>) {}
    fn run_finished(&mut self, _report: &Report) {}
}

/// Drops everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl Sink for NullSink {}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn run_started(&mut self, run: &RunStart<'_>) {
        (**self).run_started(run);
    }
    fn group_started(&mut self, group: &GroupStart<'_>) {
        (**self).group_started(group);
    }
    fn step_started(&mut self, step: &StepStart<'_>) {
        (**self).step_started(step);
    }
    fn output(&mut self, step: &str, line: &str) {
        (**self).output(step, line);
    }
    fn step_finished(&mut self, step: &StepReport) {
        (**self).step_finished(step);
    }
    fn group_finished(&mut self, group: &GroupEnd<'_>) {
        (**self).group_finished(group);
    }
    fn run_finished(&mut self, report: &Report) {
        (**self).run_finished(report);
    }
}
