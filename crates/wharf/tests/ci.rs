//! `wharf ci` on a fixture app written here: the output (timings
//! redacted), exit codes, `--fail-fast`, `--step`, `--json`, masked
//! secrets, and a parallel group whose outputs do not interleave.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::wharf_bin;

/// A checkout: `wharf.toml` with `[ci]` (after `ci`), and the scripts the
/// steps run.
fn app(ci: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"name = "shop"
[processes.web]
command = "bin/web"

[secrets]
env_file = [".env.secret"]
API_TOKEN = {{ env = "SHOP_API_TOKEN" }}

{ci}
"#
    );
    std::fs::write(dir.path().join("wharf.toml"), toml).unwrap();
    std::fs::write(
        dir.path().join(".env.secret"),
        "DB_PASSWORD=hunter2-db-pass\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    // Prints `N` lines `TAG line I`, `PAUSE` seconds apart.
    write_script(
        dir.path(),
        "bin/lines",
        "#!/bin/sh\ntag=$1; n=$2; pause=$3\ni=1\nwhile [ $i -le $n ]; do echo \"$tag line $i\"; sleep $pause; i=$((i+1)); done\n",
    );
    dir
}

fn write_script(dir: &Path, name: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

const CI: &str = r#"[ci]
steps = [
  { name = "Setup", run = "echo installing; echo CI is $CI" },
  { group = "Checks", parallel = 2, steps = [
      { name = "Style", run = "bin/lines style 4 0.1" },
      { name = "Audit", run = "bin/lines audit 3 0.4; echo audit warnings >&2" } ] },
  { name = "Tests", run = "echo 42 tests, 0 failures" },
]"#;

const FAILING: &str = r#"[ci]
steps = [
  { name = "Setup", run = "echo installing" },
  { name = "Lint", run = "echo 'app.rb:1: bad indent'; exit 1" },
  { group = "Checks", parallel = 2, steps = [
      { name = "Style", run = "sleep 0.3; echo style ok" },
      { name = "Audit", run = "echo vulnerable gem; exit 3" } ] },
  { name = "Tests", run = "echo 42 tests, 0 failures" },
]"#;

fn wharf_ci(dir: &Path, args: &[&str]) -> Output {
    Command::new(wharf_bin())
        .arg("ci")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env("SHOP_API_TOKEN", "tok-from-env-123")
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Snapshots `text` with every timing (`0.52s`, `1m3.25s`) as `[time]`.
macro_rules! assert_redacted {
    ($text:expr) => {
        insta::with_settings!({filters => vec![(r"(\d+m)?\d+\.\d\ds", "[time]")]}, {
            insta::assert_snapshot!($text);
        })
    };
}

#[test]
fn a_passing_run_exits_0_with_each_step_and_a_summary() {
    let dir = app(CI);
    let out = wharf_ci(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Style (0.4s) ends before Audit (1.2s): the order is fixed.
    assert_redacted!(stdout(&out));
    // Which parallel steps run goes to stderr, a line each (no terminal).
    assert_eq!(
        stderr(&out),
        "Checks: Style started\nChecks: Audit started\n"
    );
}

#[test]
fn a_parallel_group_shows_each_step_whole() {
    let dir = app(r#"[ci]
steps = [{ group = "Checks", parallel = 3, steps = [
  { name = "A", run = "bin/lines A 5 0.2" },
  { name = "B", run = "bin/lines B 5 0.2" },
  { name = "C", run = "bin/lines C 5 0.2" } ] }]"#);
    let started = std::time::Instant::now();
    let out = wharf_ci(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // All at once: well under 3 x 1s, one after the other.
    assert!(started.elapsed() < std::time::Duration::from_millis(2500));
    let text = stdout(&out);
    for tag in ["A", "B", "C"] {
        let block: String = (1..=5).map(|i| format!("{tag} line {i}\n")).collect();
        let at = text
            .find(&block)
            .unwrap_or_else(|| panic!("{tag}'s lines are not together:\n{text}"));
        // Preceded by its heading, followed by its result.
        assert!(text[..at].ends_with(&format!("\n\n{tag}\nbin/lines {tag} 5 0.2\n\n")));
        assert!(text[at + block.len()..].starts_with(&format!("\n✅ {tag} passed in ")));
    }
}

#[test]
fn a_failing_run_exits_1_and_names_the_failed_steps() {
    let dir = app(FAILING);
    let out = wharf_ci(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    // Every step ran.
    assert!(text.contains("42 tests, 0 failures"));
    assert_redacted!(text);
}

#[test]
fn fail_fast_stops_at_the_first_failure() {
    let dir = app(FAILING);
    let out = wharf_ci(dir.path(), &["--fail-fast"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("style ok"));
    assert_redacted!(text);
}

#[test]
fn step_runs_only_the_named_steps() {
    let dir = app(FAILING);
    let out = wharf_ci(dir.path(), &["--step", "Tests", "--step", "Style"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("CI for shop\n2 of 5 steps: Checks (Style), Tests\n"));
    assert!(!text.contains("installing"));
    assert_redacted!(text);

    let out = wharf_ci(dir.path(), &["--step", "Test"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "error: no step or group named \"Test\" in [ci]; did you mean \"Tests\"? the steps are Setup, Lint, Checks (Style, Audit), Tests\n"
    );
}

#[test]
fn json_prints_the_report_on_stdout_and_the_run_on_stderr() {
    let dir = app(FAILING);
    let out = wharf_ci(dir.path(), &["--json", "--fail-fast"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!(report, {
        ".duration_ms" => "[ms]",
        ".steps[].duration_ms" => "[ms]",
    });
    let human = stderr(&out);
    assert!(human.contains("❌ Lint failed in "));
    assert!(human.contains("app.rb:1: bad indent"));
}

#[test]
fn secret_values_are_masked() {
    let dir = app(r#"[ci]
steps = [
  { name = "Leaky", run = "echo db=hunter2-db-pass; echo token=$SHOP_API_TOKEN >&2; echo fine" },
]"#);
    let out = wharf_ci(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("\ndb=[masked]\ntoken=[masked]\nfine\n"),
        "{text}"
    );
    assert!(!text.contains("hunter2") && !text.contains("tok-from-env"));
}

#[test]
fn config_problems_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wharf.toml"),
        "name = \"shop\"\n[processes.web]\ncommand = \"bin/web\"\n",
    )
    .unwrap();
    let out = wharf_ci(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "error: {} has no [ci] steps; add them, e.g. [ci] followed by steps = [{{ name = \"Tests\", run = \"bin/test\" }}]\n",
            dir.path().join("wharf.toml").display()
        )
    );

    std::fs::write(
        dir.path().join("wharf.toml"),
        "name = \"shop\"\n[processes.web]\ncommand = \"bin/web\"\n[ci]\nsteps = [{ name = \"A\" }]\n",
    )
    .unwrap();
    let out = wharf_ci(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("wharf.toml:5:10: missing required key `run` in [ci] step 1"),
        "{}",
        stderr(&out)
    );

    let out = wharf_ci(&dir.path().join("nowhere"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is this an app directory with a wharf.toml?"));
}
