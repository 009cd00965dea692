//! wharf's CI step runner: the app's `[ci]` steps (see
//! [`wharf_config::CiConfig`]), run the way Rails 8.1's `bin/ci` runs
//! `config/ci.rb`.
//!
//! What is decided, and how it is shown, is pure and tested as such:
//! - [`mod@select`]: which steps `--step NAME` picks (a step, or a whole group);
//! - [`mask`]: the [`Masker`] that hides secret values in output lines;
//! - [`report`]: the outcome of a run, each step's [`Status`], the JSON
//!   shape (`wharf ci --json`, and what the server stores);
//! - [`render`]: durations as Rails writes them (`1m3.25s`, `0.52s`), the
//!   pass and fail lines, the summary naming failed steps, and [`Human`],
//!   the [`Sink`] that writes the whole run for people.
//!
//! [`run`] is the I/O: each step is started by a [`Launcher`] — [`Host`]:
//! `sh -c RUN` in the checkout, in its own process group (the server's
//! docker runtime has one for a container of the build image) — its
//! stdout and stderr merged into one stream and read line by line
//! (masked) into a [`Sink`]. Steps run in order; a group with
//! `parallel = N` runs up to N of its steps at once, and a [`Sink`] is told
//! which steps to show whole when they end ([`StepStart::replay`]), so
//! their outputs never interleave. The sink sees every line live, with its
//! step, so the server can keep a log per step.
//!
//! Decisions where Rails and the issue are silent:
//! - `--fail-fast` stops at the first failed step: steps not yet started
//!   are [`Status::Skipped`]; siblings still running in a parallel group
//!   are stopped (SIGTERM to their process group, SIGKILL after
//!   [`Options::stop_timeout`]) and reported [`Status::Stopped`], their
//!   output so far shown, as GitHub Actions' `fail-fast` cancels
//!   in-progress jobs. (Rails lets them finish.)
//! - Cancelling ([`Options::cancel`]: Ctrl-C, a newer push) stops running
//!   steps the same way; they are [`Status::Interrupted`].
//! - Steps get `CI=true` (as Rails sets it), on top of the runner's
//!   environment unless [`Options::inherit_env`] is false, then
//!   [`Options::env`].
//! - Once a step's shell has exited, its output is read until every
//!   process holding it has closed it; background processes still holding
//!   it [`DRAIN_TIMEOUT`] later are sent SIGTERM and the step ends.

pub mod launch;
pub mod mask;
pub mod render;
pub mod report;
mod runner;
pub mod select;
pub mod sink;

pub use launch::{Exit, Host, Launch, Launcher, Started, StepProcess};
pub use mask::Masker;
pub use render::{Human, format_duration};
pub use report::{Report, Status, StepReport};
pub use runner::{DRAIN_TIMEOUT, Options, run};
pub use select::{SelectError, select};
pub use sink::{GroupEnd, GroupStart, NullSink, RunStart, Sink, StepStart};
