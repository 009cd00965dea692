//! Running the steps: each one started by the [`Launcher`] (on this
//! machine: `SHELL -c RUN` in the checkout, in its own process group), its
//! stdout and stderr one stream read line by line.
//!
//! One task per running step sends its lines and then its end on a
//! channel; the caller's task takes them in order and hands them to the
//! [`Sink`], so the sink sees a step's lines before its end and never needs
//! to be shared. Groups start up to `parallel` steps and start the next one
//! as each ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wharf_config::{CiRun, CiStep};

use crate::launch::{Host, Launch, Launcher, Started};
use crate::mask::Masker;
use crate::report::{Report, Status, StepReport};
use crate::select::{self, SelectError};
use crate::sink::{GroupEnd, GroupStart, RunStart, Sink, StepStart};

/// How long a step's output is still read once its shell has exited, for
/// processes it started that still hold it; they are then sent SIGTERM.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest line passed on whole; a longer one is passed on in pieces this
/// long (a secret cut in two by that is not masked).
const MAX_LINE: u64 = 64 * 1024;
/// Lines in flight from the step tasks to the sink; a step that prints
/// faster than the sink takes waits on its pipe.
const CHANNEL: usize = 1024;

/// How to run the steps.
#[derive(Clone)]
pub struct Options {
    /// Stop at the first failed step (see the crate's docs).
    pub fail_fast: bool,
    /// `--step NAME`s: run only these steps or groups; empty: all.
    pub only: Vec<String>,
    /// Where the steps run: the checkout (on this machine).
    pub cwd: PathBuf,
    /// Set for every step, after `CI=true` (so they may override it).
    pub env: Vec<(String, String)>,
    /// Start from this process's environment (true), or from an empty one.
    pub inherit_env: bool,
    /// Values masked in the output (see [`Masker`]).
    pub secrets: Vec<String>,
    /// Runs each step as `SHELL -c RUN` (on this machine).
    pub shell: PathBuf,
    /// Runs the steps elsewhere (a container) instead of on this machine
    /// with `shell`, `cwd` and `inherit_env`.
    pub launcher: Option<Arc<dyn Launcher>>,
    /// Between SIGTERM and SIGKILL when a step is stopped.
    pub stop_timeout: Duration,
    /// Cancels the run: running steps are stopped, the others skipped.
    pub cancel: CancellationToken,
}

impl Options {
    /// Runs in `cwd` with `/bin/sh`, this process's environment, every
    /// step, no secrets, and 5s for a stopped step to exit.
    pub fn new(cwd: impl Into<PathBuf>) -> Options {
        Options {
            fail_fast: false,
            only: Vec::new(),
            cwd: cwd.into(),
            env: Vec::new(),
            inherit_env: true,
            secrets: Vec::new(),
            shell: PathBuf::from("/bin/sh"),
            launcher: None,
            stop_timeout: Duration::from_secs(5),
            cancel: CancellationToken::new(),
        }
    }
}

/// Never shows the secrets, nor the env values (they may be secrets too).
impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Options")
            .field("fail_fast", &self.fail_fast)
            .field("only", &self.only)
            .field("cwd", &self.cwd)
            .field("env", &env)
            .field("inherit_env", &self.inherit_env)
            .field("secrets", &self.secrets.len())
            .field("shell", &self.shell)
            .field("launcher", &self.launcher)
            .field("stop_timeout", &self.stop_timeout)
            .field("cancelled", &self.cancel.is_cancelled())
            .finish()
    }
}

/// Runs `steps` (those `opts.only` picks), telling `sink` as it goes.
/// Fails only when `opts.only` names no step; a step that fails, or cannot
/// start, is in the report.
pub async fn run(
    steps: &[CiStep],
    opts: &Options,
    sink: &mut (dyn Sink + Send),
) -> Result<Report, SelectError> {
    let plan = select::select(steps, &opts.only)?;
    sink.run_started(&RunStart {
        steps: &plan,
        total: select::count(steps),
    });
    let started = Instant::now();
    let launcher = opts.launcher.clone().unwrap_or_else(|| {
        Arc::new(Host {
            shell: opts.shell.clone(),
            cwd: opts.cwd.clone(),
            inherit_env: opts.inherit_env,
        })
    });
    let mut env = vec![("CI".to_owned(), "true".to_owned())];
    env.extend(opts.env.iter().cloned());
    let ctx = Arc::new(StepContext {
        launcher,
        env,
        masker: Masker::new(&opts.secrets),
        stop_timeout: opts.stop_timeout,
    });
    let mut reports: Vec<StepReport> = Vec::new();
    let mut failed = false;
    let mut interrupted = false;
    for item in &plan {
        let (group, parallel, runs): (Option<&str>, usize, Vec<&CiRun>) = match item {
            CiStep::Run(run) => (None, 1, vec![run]),
            CiStep::Group(g) => (
                Some(g.name.as_str()),
                usize::try_from(g.parallel).unwrap_or(1),
                g.steps.iter().collect(),
            ),
        };
        if opts.cancel.is_cancelled() || (failed && opts.fail_fast) {
            interrupted |= opts.cancel.is_cancelled();
            reports.extend(
                runs.iter()
                    .map(|r| StepReport::skipped(&r.name, group, &ctx.masker.mask(&r.run))),
            );
            continue;
        }
        let parallel = parallel.clamp(1, runs.len().max(1));
        if let Some(name) = group {
            sink.group_started(&GroupStart {
                name,
                parallel,
                steps: runs.len(),
            });
        }
        let group_started = Instant::now();
        let batch = run_batch(&runs, group, parallel, opts, &ctx, sink).await;
        if let Some(name) = group {
            sink.group_finished(&GroupEnd {
                name,
                ok: batch.iter().all(|r| r.ok),
                steps: &batch,
                duration_ms: millis(group_started.elapsed()),
            });
        }
        failed |= batch.iter().any(|r| !r.ok);
        interrupted |= batch.iter().any(|r| r.status == Status::Interrupted)
            || (opts.cancel.is_cancelled() && batch.iter().any(|r| r.status == Status::Skipped));
        reports.extend(batch);
    }
    let report = Report::new(reports, interrupted, millis(started.elapsed()));
    sink.run_finished(&report);
    Ok(report)
}

/// What every step task needs.
#[derive(Debug)]
struct StepContext {
    launcher: Arc<dyn Launcher>,
    /// `CI=true`, then [`Options::env`].
    env: Vec<(String, String)>,
    masker: Masker,
    stop_timeout: Duration,
}

/// From a step task to the sink.
#[derive(Debug)]
enum Msg {
    Line(usize, String),
    Done(usize, Outcome),
}

/// How a step's process ended.
#[derive(Debug, Default)]
struct Outcome {
    exit_code: Option<i32>,
    signal: Option<i32>,
    /// It could not start (or its task failed), and why.
    error: Option<String>,
    /// It was stopped (fail-fast, cancel) before it ended by itself.
    stopped: bool,
    duration: Duration,
}

/// Runs `runs` (one step, or a group's), up to `parallel` at once; their
/// reports in the order of `runs`, those never started skipped.
async fn run_batch(
    runs: &[&CiRun],
    group: Option<&str>,
    parallel: usize,
    opts: &Options,
    ctx: &Arc<StepContext>,
    sink: &mut (dyn Sink + Send),
) -> Vec<StepReport> {
    let replay = parallel > 1;
    // Cancelled by the run's token, or by the first failure with fail-fast.
    let stop = opts.cancel.child_token();
    let (tx, mut rx) = mpsc::channel::<Msg>(CHANNEL);
    let mut tasks = JoinSet::new();
    // Task id -> index in `runs`, to notice a task that died without a word.
    let mut ids = HashMap::new();
    let mut results: Vec<Option<StepReport>> = vec![None; runs.len()];
    let mut next = 0;
    let mut running = 0;
    loop {
        while running < parallel && next < runs.len() && !stop.is_cancelled() {
            let run = runs[next];
            sink.step_started(&StepStart {
                name: &run.name,
                group,
                run: &ctx.masker.mask(&run.run),
                replay,
            });
            let handle = tasks.spawn(step_task(
                next,
                (run.name.clone(), run.run.clone()),
                ctx.clone(),
                tx.clone(),
                stop.clone(),
            ));
            ids.insert(handle.id(), next);
            next += 1;
            running += 1;
        }
        if running == 0 {
            break;
        }
        let (i, outcome) = tokio::select! {
            // Lines and ends first: a task's end is sent before its task
            // finishes, so `join_next` only matters for a task that died.
            biased;
            msg = rx.recv() => match msg {
                Some(Msg::Line(i, line)) => {
                    if let Some(run) = runs.get(i) {
                        sink.output(&run.name, &line);
                    }
                    continue;
                }
                Some(Msg::Done(i, outcome)) => (i, outcome),
                // Never: `tx` is held here.
                None => break,
            },
            Some(joined) = tasks.join_next_with_id() => {
                let Err(error) = joined else { continue };
                let Some(i) = ids.get(&error.id()).copied() else { continue };
                if results.get(i).is_some_and(Option::is_some) {
                    continue;
                }
                let outcome = Outcome {
                    error: Some(format!("the step's runner failed: {error}")),
                    ..Outcome::default()
                };
                (i, outcome)
            }
        };
        let Some(run) = runs.get(i) else { continue };
        running -= 1;
        let report = to_report(run, group, outcome, opts.cancel.is_cancelled(), &ctx.masker);
        if report.status == Status::Failed && opts.fail_fast {
            stop.cancel();
        }
        sink.step_finished(&report);
        results[i] = Some(report);
    }
    results
        .into_iter()
        .zip(runs)
        .map(|(report, run)| {
            report.unwrap_or_else(|| {
                StepReport::skipped(&run.name, group, &ctx.masker.mask(&run.run))
            })
        })
        .collect()
}

fn to_report(
    run: &CiRun,
    group: Option<&str>,
    outcome: Outcome,
    cancelled: bool,
    masker: &Masker,
) -> StepReport {
    let status = if outcome.error.is_some() {
        Status::Failed
    } else if outcome.exit_code == Some(0) {
        Status::Passed
    } else if outcome.stopped && cancelled {
        Status::Interrupted
    } else if outcome.stopped {
        Status::Stopped
    } else {
        Status::Failed
    };
    StepReport {
        name: run.name.clone(),
        group: group.map(str::to_string),
        run: masker.mask(&run.run).into_owned(),
        status,
        ok: status == Status::Passed,
        exit_code: outcome.exit_code,
        signal: outcome.signal,
        error: outcome.error,
        duration_ms: millis(outcome.duration),
    }
}

async fn step_task(
    i: usize,
    (name, command): (String, String),
    ctx: Arc<StepContext>,
    tx: mpsc::Sender<Msg>,
    stop: CancellationToken,
) {
    let outcome = run_step(i, (&name, &command), &ctx, &tx, &stop).await;
    let _ = tx.send(Msg::Done(i, outcome)).await;
}

async fn run_step(
    i: usize,
    (name, command): (&str, &str),
    ctx: &StepContext,
    tx: &mpsc::Sender<Msg>,
    stop: &CancellationToken,
) -> Outcome {
    let started = Instant::now();
    let launch = Launch {
        name,
        command,
        env: &ctx.env,
    };
    let Started {
        output,
        mut process,
    } = match ctx.launcher.launch(launch).await {
        Ok(started) => started,
        Err(e) => {
            return Outcome {
                error: Some(format!("could not start {}: {e}", ctx.launcher.describe())),
                duration: started.elapsed(),
                ..Outcome::default()
            };
        }
    };
    let mut reading = tokio::spawn(read_lines(i, output, ctx.masker.clone(), tx.clone()));
    let (exit, stopped) = tokio::select! {
        exit = process.wait() => (exit, false),
        () = stop.cancelled() => (process.stop(ctx.stop_timeout).await, true),
    };
    let duration = started.elapsed();
    // What it started may still hold the output: read on a little, then
    // ask them to go, then make them.
    if tokio::time::timeout(DRAIN_TIMEOUT, &mut reading)
        .await
        .is_err()
    {
        process.signal_rest(false);
        if tokio::time::timeout(ctx.stop_timeout, &mut reading)
            .await
            .is_err()
        {
            process.signal_rest(true);
            if tokio::time::timeout(DRAIN_TIMEOUT, &mut reading)
                .await
                .is_err()
            {
                reading.abort();
            }
        }
    }
    process.release().await;
    Outcome {
        exit_code: exit.and_then(|e| e.code),
        signal: exit.and_then(|e| e.signal),
        error: None,
        stopped,
        duration,
    }
}

/// Sends each line of `output` (masked, without its line end) as step
/// `i`'s, until it ends or the sink is gone.
async fn read_lines(
    i: usize,
    output: Box<dyn AsyncRead + Send + Unpin>,
    masker: Masker,
    tx: mpsc::Sender<Msg>,
) {
    let mut reader = BufReader::new(output);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let mut line = buf.as_slice();
        if let Some(rest) = line.strip_suffix(b"\n") {
            line = rest.strip_suffix(b"\r").unwrap_or(rest);
        }
        let text = String::from_utf8_lossy(line);
        let masked = masker.mask(&text).into_owned();
        if tx.send(Msg::Line(i, masked)).await.is_err() {
            break;
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
