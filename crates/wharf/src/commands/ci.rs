//! `wharf ci`: the app's `[ci]` steps, run here in a checkout, the way
//! Rails' `bin/ci` runs `config/ci.rb` (see `wharf-ci`).
//!
//! stdout is the run: the steps' output (live, or whole when a step of a
//! parallel group ends), each step's pass or fail line and time, then the
//! summary; with `--json`, only the report, and the rest goes to stderr.
//! While steps of a parallel group run, stderr shows which (a spinner on a
//! terminal, a line per step otherwise). Errors go to stderr.
//!
//! The values of the app's secrets that can be read here are masked in
//! the output: `[secrets] env_file` files in the checkout, and for every
//! secret (accessories' too) this environment's variable of its name and
//! of the variable it comes from, and the file it comes from. A secret
//! that lives only on the server cannot reach the steps here either.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use wharf_ci::{
    GroupEnd, GroupStart, Human, Options, Report, RunStart, Sink, StepReport, StepStart,
};
use wharf_config::{AppConfig, SecretSource};

use crate::{Exit, output};

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells do).
const INTERRUPTED: u8 = 130;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CiArgs {
    /// The server's pipelines instead (`runs`, `logs`).
    #[command(subcommand)]
    pub command: Option<super::pipelines::CiCommand>,
    /// The checkout to run the steps in, holding wharf.toml.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Stop at the first failed step: the steps after it are not run, and
    /// those running beside it in a parallel group are stopped.
    #[arg(long, short = 'f')]
    pub fail_fast: bool,
    /// Run only this step, or every step of this group (repeatable).
    #[arg(long = "step", value_name = "NAME")]
    pub steps: Vec<String>,
    /// Print the report as JSON on stdout at the end; the steps' output and
    /// the pass and fail lines go to stderr instead.
    #[arg(long)]
    pub json: bool,
    /// When every step passed, post a `success` commit status named
    /// `signoff` for HEAD (a clean, pushed checkout; the token from
    /// WHARF_FORGE_TOKEN), as gh-signoff does.
    #[arg(long)]
    pub signoff: bool,
    /// The forge of the push remote, when its host does not say it.
    #[arg(long, value_name = "FORGE", requires = "signoff")]
    pub forge: Option<wharf_forge::Forge>,
}

pub async fn run(args: CiArgs) -> Result<()> {
    let config = AppConfig::load(&args.dir)?;
    let Some(ci) = &config.ci else {
        return Err(Exit::Usage(format!(
            "{} has no [ci] steps; add them, e.g. [ci] followed by steps = [{{ name = \"Tests\", run = \"bin/test\" }}]",
            args.dir.join(wharf_config::FILE_NAME).display()
        ))
        .into());
    };
    let mut opts = Options::new(&args.dir);
    opts.fail_fast = args.fail_fast;
    opts.only = args.steps;
    opts.secrets = local_secrets(&config, &args.dir);
    let cancel = opts.cancel.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    let title = format!("CI for {}", config.name);
    let (out, color): (Box<dyn Write + Send>, bool) = if args.json {
        (
            Box::new(std::io::stderr()),
            colors(std::io::stderr().is_terminal()),
        )
    } else {
        (
            Box::new(std::io::stdout()),
            colors(std::io::stdout().is_terminal()),
        )
    };
    let mut sink = Terminal::new(Human::new(out, title, color));
    let result = wharf_ci::run(&ci.steps, &opts, &mut sink).await;
    ctrl_c.abort();
    let report = result.map_err(|e| Exit::Usage(e.to_string()))?;
    if args.json {
        output::json(&report);
    }
    if report.interrupted {
        return Err(Exit::Code(INTERRUPTED).into());
    }
    if !report.ok {
        // The summary said which steps failed.
        if args.signoff {
            output::note("no signoff: CI failed");
        }
        return Err(Exit::Code(1).into());
    }
    if args.signoff {
        super::signoff::signoff(&args.dir, args.forge).await?;
    }
    Ok(())
}

/// Colors on a terminal, unless NO_COLOR is set or TERM is dumb.
fn colors(terminal: bool) -> bool {
    terminal
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// Every value of the app's secrets that can be read on this machine.
fn local_secrets(config: &AppConfig, dir: &Path) -> Vec<String> {
    let mut values = Vec::new();
    let env = |name: &str| std::env::var(name).ok();
    for (key, source) in config.secret_sources() {
        values.extend(env(key));
        match source {
            SecretSource::Env(name) => values.extend(env(name)),
            SecretSource::File(path) => {
                if let Ok(text) = std::fs::read_to_string(dir.join(path)) {
                    values.push(text.strip_suffix('\n').unwrap_or(&text).to_string());
                }
            }
            SecretSource::EnvFile { path, key } => {
                if let Ok(text) = std::fs::read_to_string(dir.join(path)) {
                    let (pairs, _) = wharf_config::dotenv::parse_lenient(&text, &BTreeMap::new());
                    values.extend(pairs.into_iter().filter(|(k, _)| k == key).map(|(_, v)| v));
                }
            }
        }
    }
    // `[secrets] env_file`: every value is a secret; a file that cannot be
    // read here has nothing to mask here.
    let mut known = BTreeMap::new();
    for file in &config.secret_env_files {
        let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
            continue;
        };
        let (pairs, _) = wharf_config::dotenv::parse_lenient(&text, &known);
        for (key, value) in pairs {
            values.extend(env(&key));
            values.push(value.clone());
            known.insert(key, value);
        }
    }
    values
}

/// [`Human`] on stdout (or stderr with `--json`), and on stderr which steps
/// of a parallel group are running: a spinner on a terminal, else a line
/// as each starts.
struct Terminal<W: Write> {
    human: Human<W>,
    tty: bool,
    spinner: Option<ProgressBar>,
    group: String,
    /// The parallel steps running, in the order they started.
    running: Vec<String>,
}

impl<W: Write> std::fmt::Debug for Terminal<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Terminal<W> {
    fn new(human: Human<W>) -> Terminal<W> {
        Terminal {
            human,
            tty: std::io::stderr().is_terminal(),
            spinner: None,
            group: String::new(),
            running: Vec::new(),
        }
    }

    /// Runs `f` on the human output with the spinner out of its way.
    fn write(&mut self, f: impl FnOnce(&mut Human<W>)) {
        match &self.spinner {
            Some(spinner) => spinner.suspend(|| f(&mut self.human)),
            None => f(&mut self.human),
        }
    }

    fn show_running(&mut self) {
        if self.running.is_empty() {
            if let Some(spinner) = self.spinner.take() {
                spinner.finish_and_clear();
            }
            return;
        }
        let message = format!("{} - {}", self.group, self.running.join(" | "));
        let spinner = self.spinner.get_or_insert_with(|| {
            let spinner = ProgressBar::new_spinner();
            spinner.set_style(
                ProgressStyle::with_template("{spinner} {msg}... ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner.enable_steady_tick(Duration::from_millis(100));
            spinner
        });
        spinner.set_message(message);
    }
}

impl<W: Write> Sink for Terminal<W> {
    fn run_started(&mut self, run: &RunStart<'_>) {
        self.write(|h| h.run_started(run));
    }

    fn group_started(&mut self, group: &GroupStart<'_>) {
        self.group = group.name.to_string();
        self.write(|h| h.group_started(group));
    }

    fn step_started(&mut self, step: &StepStart<'_>) {
        self.write(|h| h.step_started(step));
        if step.replay {
            self.running.push(step.name.to_string());
            if self.tty {
                self.show_running();
            } else {
                output::note(&format!("{}: {} started", self.group, step.name));
            }
        }
    }

    fn output(&mut self, step: &str, line: &str) {
        self.write(|h| h.output(step, line));
    }

    fn step_finished(&mut self, step: &StepReport) {
        let was_running = self.running.len();
        self.running.retain(|name| name != &step.name);
        self.write(|h| h.step_finished(step));
        if self.tty && was_running != self.running.len() {
            self.show_running();
        }
    }

    fn group_finished(&mut self, group: &GroupEnd<'_>) {
        self.running.clear();
        if let Some(spinner) = self.spinner.take() {
            spinner.finish_and_clear();
        }
        self.write(|h| h.group_finished(group));
    }

    fn run_finished(&mut self, report: &Report) {
        self.write(|h| h.run_finished(report));
    }
}
