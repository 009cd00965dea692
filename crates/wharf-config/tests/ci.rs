//! `[ci]` and `[deploy] branch`: what they resolve to, how `config show`
//! writes them back, and the errors (exact text, all at once, in file
//! order).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{MINIMAL, parse};
use wharf_config::{AppConfig, CiConfig, CiGroup, CiImage, CiRun, CiStep};

const CI: &str = r#"
name = "shop"
runtime = "docker"
[processes.web]
command = "bin/web"

[ci]
image = "build"
steps = [
  { name = "Setup", run = "bin/setup --skip-server" },
  { group = "Checks", parallel = 3, steps = [
      { name = "Style", run = "bin/rubocop" },
      { name = "Audit", run = "bin/bundler-audit" } ] },
  { group = "Slow", steps = [{ name = "System", run = "bin/rails test:system" }] },
  { name = "Tests", run = "bin/rails test 'a b'" },
]

[deploy]
branch = "main"
"#;

fn run(name: &str, run: &str) -> CiRun {
    CiRun {
        name: name.into(),
        run: run.into(),
    }
}

/// The printed errors of a config that must be invalid.
fn errors(source: &str) -> String {
    let source = source.strip_prefix('\n').unwrap_or(source);
    match AppConfig::parse(Path::new("wharf.toml"), source) {
        Ok(config) => panic!("parsed, but expected errors:\n{config:#?}"),
        Err(errors) => errors.to_string(),
    }
}

#[test]
fn steps_and_groups_resolve_in_order() {
    let config = parse(CI);
    assert_eq!(
        config.ci,
        Some(CiConfig {
            image: Some(CiImage::Build),
            steps: vec![
                CiStep::Run(run("Setup", "bin/setup --skip-server")),
                CiStep::Group(CiGroup {
                    name: "Checks".into(),
                    parallel: 3,
                    steps: vec![
                        run("Style", "bin/rubocop"),
                        run("Audit", "bin/bundler-audit")
                    ],
                }),
                // `parallel` defaults to 1: one after the other.
                CiStep::Group(CiGroup {
                    name: "Slow".into(),
                    parallel: 1,
                    steps: vec![run("System", "bin/rails test:system")],
                }),
                CiStep::Run(run("Tests", "bin/rails test 'a b'")),
            ],
        })
    );
    assert_eq!(config.deploy.branch.as_deref(), Some("main"));
    let names: Vec<(Option<&str>, &str)> = config
        .ci
        .as_ref()
        .unwrap()
        .runs()
        .map(|(g, r)| (g.map(|g| g.name.as_str()), r.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (None, "Setup"),
            (Some("Checks"), "Style"),
            (Some("Checks"), "Audit"),
            (Some("Slow"), "System"),
            (None, "Tests")
        ]
    );
}

#[test]
fn absent_ci_and_branch_are_none() {
    let config = parse(MINIMAL);
    assert_eq!(config.ci, None);
    assert_eq!(config.deploy.branch, None);
    let json = serde_json::to_value(&config).unwrap();
    assert!(json.get("ci").is_none());
    assert!(json["deploy"].get("branch").is_none());
}

#[test]
fn array_of_tables_form_is_the_same() {
    let config = parse(
        r#"
name = "shop"
[processes.web]
command = "bin/web"

[[ci.steps]]
name = "Setup"
run = "bin/setup"

[[ci.steps]]
group = "Checks"
parallel = 2
[[ci.steps.steps]]
name = "Style"
run = "bin/rubocop"
"#,
    );
    let ci = config.ci.unwrap();
    assert_eq!(ci.image, None);
    assert_eq!(
        ci.steps,
        [
            CiStep::Run(run("Setup", "bin/setup")),
            CiStep::Group(CiGroup {
                name: "Checks".into(),
                parallel: 2,
                steps: vec![run("Style", "bin/rubocop")],
            })
        ]
    );
}

#[test]
fn show_ci() {
    insta::assert_snapshot!(parse(CI).to_toml());
}

#[test]
fn shown_and_stored_ci_read_back_the_same() {
    let config = parse(CI);
    let rendered = config.to_toml();
    assert_eq!(parse(&rendered), config, "rendered:\n{rendered}");
    assert_eq!(parse(&rendered).to_toml(), rendered);
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(
        json["ci"]["steps"][1],
        serde_json::json!({
            "kind": "group",
            "name": "Checks",
            "parallel": 3,
            "steps": [
                { "name": "Style", "run": "bin/rubocop" },
                { "name": "Audit", "run": "bin/bundler-audit" }
            ]
        })
    );
    assert_eq!(json["ci"]["image"], "build");
    assert_eq!(json["deploy"]["branch"], "main");
    let back: AppConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back, config);
}

#[test]
fn every_ci_problem_is_reported_at_once_with_its_location() {
    insta::assert_snapshot!(errors(
        r#"
name = "shop"
[processes.web]
command = "bin/web"

[ci]
image = "ruby:3.3"
stesp = 1
steps = [
  { name = "Setup", run = "" },
  { name = "", run = "x" },
  { name = "Setup", run = "bin/again" },
  { name = "Lint", command = "bin/lint" },
  { run = "bin/nameless" },
  "bin/rails test",
  { group = "Checks", parallel = 0, steps = [
      { name = "Style" },
      { group = "Inner", steps = [] },
      { name = "Checks", run = "x" } ] },
  { group = "Empty", steps = [] },
  { name = "Grp", run = "x", steps = [{ name = "In", run = "y" }] },
  { parallel = 2 },
  { name = " Padded", run = "x" },
  { name = "Two\nlines", run = "x" },
]
"#
    ));
}

#[test]
fn ci_shape_errors() {
    insta::assert_snapshot!(errors(
        r#"
name = "shop"
ci = "bin/ci"
[processes.web]
command = "bin/web"
"#
    ));
    insta::assert_snapshot!(errors(
        r#"
name = "shop"
[processes.web]
command = "bin/web"
[ci]
image = "build"
"#
    ));
    insta::assert_snapshot!(errors(
        r#"
name = "shop"
[processes.web]
command = "bin/web"
[ci]
steps = []
"#
    ));
    insta::assert_snapshot!(errors(
        r#"
name = "shop"
[processes.web]
command = "bin/web"
[ci]
steps = "bin/ci"
"#
    ));
}

#[test]
fn ci_in_the_build_image_needs_one() {
    insta::assert_snapshot!(errors(
        r#"
name = "shop"
runtime = "docker"
image = "registry.example.com/shop:1.2"
[processes.web]
command = "bin/web"
[ci]
image = "build"
steps = [{ name = "Tests", run = "bin/rails test" }]
"#
    ));
}

#[test]
fn deploy_branch_errors() {
    insta::assert_snapshot!(errors(
        r#"
name = "shop"
[processes.web]
command = "bin/web"
[deploy]
branch = "refs/heads/main"
"#
    ));
    insta::assert_snapshot!(errors(
        r#"
name = "shop"
[processes.web]
command = "bin/web"
[deploy]
branch = "my branch"
"#
    ));
    insta::assert_snapshot!(errors(
        r#"
name = "shop"
[processes.web]
command = "bin/web"
[deploy]
branch = 1
brnach = "main"
"#
    ));
}

#[test]
fn top_level_steps_say_where_they_go() {
    insta::assert_snapshot!(errors(
        r#"
name = "shop"
steps = [{ name = "Tests", run = "bin/test" }]
[processes.web]
command = "bin/web"
"#
    ));
}
