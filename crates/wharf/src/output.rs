//! Rendering for people: deploy progress (a spinner per step on a TTY,
//! plain lines otherwise), tables, errors. Everything here writes to
//! stderr except [`data`], which is the command's answer on stdout.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use wharf_server::api::{Progress, Step};

// Writes ignore errors on purpose: a closed terminal or pipe (`wharf up |
// head`, a dropped SSH session) must not panic wharf half-way through a
// shutdown, as `eprintln!` would.

pub fn error(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "error: {msg}");
}

pub fn note(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

/// A command's answer, on stdout.
pub fn data(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

pub fn json<T: serde::Serialize>(value: &T) {
    data(&serde_json::to_string_pretty(value).unwrap_or_default());
}

fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// Follows a deploy's progress events and shows each step with its timing.
#[derive(Debug)]
pub struct ProgressView {
    tty: bool,
    current: Option<(Step, Option<String>, Instant, Option<ProgressBar>)>,
}

impl Default for ProgressView {
    fn default() -> Self {
        ProgressView {
            tty: stderr_is_tty(),
            current: None,
        }
    }
}

impl ProgressView {
    /// Shows one event; returns the outcome when it is the last one.
    pub fn show(&mut self, p: &Progress) -> Option<(bool, String)> {
        match p {
            Progress::Started {
                app,
                release,
                kind,
                deploy,
            } => {
                let what = match kind.as_str() {
                    "rollback" => "rolling back to",
                    "restore" => "restoring",
                    _ => "deploying",
                };
                note(&format!("{what} {app} release {release} (deploy {deploy})"));
            }
            Progress::Step { step, detail } => {
                self.end_step(true);
                let bar = self.tty.then(|| {
                    let bar = ProgressBar::new_spinner();
                    bar.set_style(
                        ProgressStyle::with_template("  {spinner} {msg} ({elapsed})")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_message(step_line(*step, detail.as_deref()));
                    bar.enable_steady_tick(Duration::from_millis(100));
                    bar
                });
                if !self.tty {
                    note(&format!("  - {}", step_line(*step, detail.as_deref())));
                }
                self.current = Some((*step, detail.clone(), Instant::now(), bar));
            }
            Progress::Output { line, .. } => match self.current.as_ref().and_then(|c| c.3.as_ref())
            {
                Some(bar) => bar.println(format!("    | {line}")),
                None => note(&format!("    | {line}")),
            },
            Progress::Stage { name, detail } => {
                self.end_step(true);
                note(&match detail {
                    Some(d) => format!("  - {name}: {d}"),
                    None => format!("  - {name}"),
                });
            }
            Progress::CiStep { name, group, .. } => note(&match group {
                Some(g) => format!("    {g}: {name} started"),
                None => format!("    {name} started"),
            }),
            Progress::CiOutput { step, line } => note(&format!("    | {step}: {line}")),
            Progress::CiStepEnd { line, .. } => note(&format!("    {line}")),
            Progress::Queued { job, behind } => match behind {
                Some(b) => note(&format!("queued as job {job}, behind job {b}")),
                None => tracing::debug!(job, "queued"),
            },
            Progress::Finished { ok, message, .. } => {
                self.end_step(*ok);
                return Some((*ok, message.clone()));
            }
        }
        None
    }

    fn end_step(&mut self, ok: bool) {
        let Some((step, detail, started, bar)) = self.current.take() else {
            return;
        };
        let mark = if ok { "ok" } else { "FAILED" };
        let line = format!(
            "  {mark} {} ({:.2}s)",
            step_line(step, detail.as_deref()),
            started.elapsed().as_secs_f64()
        );
        match bar {
            Some(bar) => {
                bar.finish_and_clear();
                note(&line);
            }
            None => note(&line),
        }
    }
}

fn step_line(step: Step, detail: Option<&str>) -> String {
    match detail {
        Some(d) => format!("{}: {d}", step.label()),
        None => step.label().to_owned(),
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the epoch as a UTC time, to the second
/// (`2026-12-03T08:36:54Z`).
pub fn rfc3339(at_ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(at_ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Milliseconds since the epoch as "3m 12s ago".
pub fn ago(at_ms: i64) -> String {
    let secs = ((now_ms() - at_ms).max(0) / 1000) as u64;
    format!(
        "{} ago",
        humantime::format_duration(Duration::from_secs(secs))
    )
}

/// Left-aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out.trim_end().to_owned()
}

/// Bytes for people: `512 B`, `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
