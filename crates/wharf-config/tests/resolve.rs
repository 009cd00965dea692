//! Resolution: defaults, normalisation, env conversion and layering, loading.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use wharf_config::{AppConfig, HealthCheck, HttpRoute, LoadError, RuntimeKind};

fn parse(source: &str) -> AppConfig {
    match AppConfig::parse(Path::new("wharf.toml"), source) {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid config, got:\n{errors}"),
    }
}

const MINIMAL: &str = r#"
name = "hello"
[processes.web]
command = "bin/hello"
"#;

#[test]
fn defaults_are_filled_in() {
    let config = parse(MINIMAL);
    assert_eq!(config.name, "hello");
    assert_eq!(config.runtime, RuntimeKind::Process);
    assert!(config.env.is_empty());
    assert_eq!(config.build, None);
    assert_eq!(config.release_command, None);
    let web = &config.processes["web"];
    assert_eq!(web.name, "web");
    assert_eq!(web.instances, 1);
    assert_eq!(web.stop_timeout, Duration::from_secs(10));
    assert!(web.env.is_empty());
    assert_eq!(web.http, None);
    assert_eq!(web.health, None);
    assert_eq!(config.deploy.health_timeout, Duration::from_secs(60));
    assert_eq!(config.deploy.drain_timeout, Duration::from_secs(30));
    assert_eq!(config.deploy.retain, 5);
}

#[test]
fn http_processes_get_default_route_and_health() {
    let config = parse(
        r#"
name = "hello"
[processes.web]
command = "bin/hello"
http = {}
[processes.worker]
command = "bin/worker"
"#,
    );
    let web = &config.processes["web"];
    let route = HttpRoute {
        host: None,
        path_prefix: "/".into(),
    };
    assert_eq!(web.http, Some(route));
    let health = HealthCheck {
        path: "/up".into(),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        threshold: 2,
    };
    assert_eq!(web.health, Some(health));
    let names: Vec<&str> = config.http_processes().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web"]);
}

#[test]
fn partial_health_keeps_other_defaults() {
    let config = parse(
        r#"
name = "hello"
[processes.web]
command = "bin/hello"
[processes.web.http]
[processes.web.health]
interval = "500ms"
"#,
    );
    let health = config.processes["web"].health.clone().unwrap();
    assert_eq!(health.interval, Duration::from_millis(500));
    assert_eq!(health.timeout, Duration::from_secs(2));
    assert_eq!(health.path, "/up");
}

#[test]
fn trailing_slashes_are_trimmed_except_root() {
    for (written, resolved) in [
        ("/", "/"),
        ("//", "/"),
        ("/api/", "/api"),
        ("/api//", "/api"),
        ("/api", "/api"),
        ("/a/b/", "/a/b"),
    ] {
        let source = format!(
            "name = \"x\"\n[processes.web]\ncommand = \"c\"\nhttp = {{ path = \"{written}\" }}\n"
        );
        let config = parse(&source);
        let route = config.processes["web"].http.clone().unwrap();
        assert_eq!(route.path_prefix, resolved, "for {written:?}");
    }
}

#[test]
fn env_scalars_become_strings() {
    let config = parse(
        r#"
name = "hello"
[env]
TEXT = "hi"
INT = 8080
HEX = 0x10
FLOAT = 1.5
EXP = 1e3
YES = true
NO = false
[processes.web]
command = "bin/hello"
"#,
    );
    let expected: BTreeMap<String, String> = [
        ("TEXT", "hi"),
        ("INT", "8080"),
        ("HEX", "16"),
        ("FLOAT", "1.5"),
        ("EXP", "1000"),
        ("YES", "true"),
        ("NO", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(config.env, expected);
}

#[test]
fn durations_accept_humantime_forms() {
    let config = parse(
        r#"
name = "hello"
[processes.web]
command = "bin/hello"
stop_timeout = "0s"
[deploy]
health_timeout = "1h 30m"
drain_timeout = "1m"
"#,
    );
    assert_eq!(config.processes["web"].stop_timeout, Duration::ZERO);
    assert_eq!(config.deploy.health_timeout, Duration::from_secs(5400));
    assert_eq!(config.deploy.drain_timeout, Duration::from_secs(60));
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn env_overrides_layer_over_app_and_process_env() {
    let config = parse(
        r#"
name = "hello"
[env]
GREETING = "hi"
KEEP = "yes"
[processes.web]
command = "bin/hello"
env = { LOG = "info", GREETING = "web hi" }
"#,
    );
    let overridden = config
        .with_env_overrides(&env(&[("GREETING", "hey"), ("LOG", "debug"), ("NEW", "1")]))
        .unwrap();
    assert_eq!(
        overridden.env,
        env(&[
            ("GREETING", "hey"),
            ("KEEP", "yes"),
            ("LOG", "debug"),
            ("NEW", "1")
        ])
    );
    // The command line wins over the process's own env too.
    assert_eq!(
        overridden.processes["web"].env,
        env(&[("GREETING", "hey"), ("LOG", "debug")])
    );
    // The original is untouched.
    assert_eq!(config.env, env(&[("GREETING", "hi"), ("KEEP", "yes")]));
}

#[test]
fn env_override_keys_are_checked() {
    let config = parse(MINIMAL);
    let errors = config
        .with_env_overrides(&env(&[("1X", "a"), ("OK", "b"), ("A-B", "c")]))
        .unwrap_err();
    assert_eq!(
        errors.to_string(),
        "\
--env: invalid env key `1X`: it starts with a digit
  = hint: env keys must match [A-Za-z_][A-Za-z0-9_]*, e.g. `LOG_LEVEL`
--env: invalid env key `A-B`: only ASCII letters, digits and `_` are allowed
  = hint: env keys must match [A-Za-z_][A-Za-z0-9_]*, e.g. `LOG_LEVEL`
2 errors in --env"
    );
    assert_eq!(errors.iter().next().unwrap().location.line, 0);
}

#[test]
fn reference_file_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(path.join("wharf.reference.toml")).unwrap();
    let config = parse(&source);
    assert_eq!(config.name, "hello");
    assert_eq!(config.env["WORKERS"], "4");
    assert_eq!(config.processes.len(), 2);
    assert_eq!(config.processes["web"].instances, 2);
    assert_eq!(config.processes["web"].env["LOG"], "debug");
    let route = config.processes["web"].http.clone().unwrap();
    assert_eq!(route.host.as_deref(), Some("hello.localhost"));
    // Everything else in it is a default, spelled out.
    assert_eq!(config.deploy.retain, 5);
}

#[test]
fn load_reads_wharf_toml_from_the_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wharf.toml"), MINIMAL).unwrap();
    let config = AppConfig::load(dir.path()).unwrap();
    assert_eq!(config, parse(MINIMAL));
}

#[test]
fn load_reports_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let error = AppConfig::load(dir.path()).unwrap_err();
    assert!(matches!(error, LoadError::Io { .. }));
    let path = dir.path().join("wharf.toml");
    assert_eq!(
        error.to_string(),
        format!(
            "could not read {}: No such file or directory (os error 2); \
             is this an app directory with a wharf.toml?",
            path.display()
        )
    );
}

#[test]
fn load_reports_invalid_config_with_the_real_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wharf.toml");
    std::fs::write(&path, "name = \"x\"\n").unwrap();
    let error = AppConfig::load(dir.path()).unwrap_err();
    let LoadError::Invalid(errors) = &error else {
        panic!("expected Invalid, got {error:?}");
    };
    assert_eq!(errors.iter().next().unwrap().location.path, path);
    assert!(
        error
            .to_string()
            .ends_with(&format!("1 error in {}", path.display()))
    );
}

#[test]
fn resolved_config_survives_json() {
    // The store keeps the resolved config as JSON.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("wharf.reference.toml");
    let config = parse(&std::fs::read_to_string(path).unwrap());
    let json = serde_json::to_string(&config).unwrap();
    let back: AppConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, config);
}

#[test]
fn hostile_input_never_panics() {
    let inputs = [
        "",
        "\u{0}",
        "name = \"é\"\n[processes.\"é\"]\ncommand = \"x\"\nhttp = { host = \"é.com\" }\n",
        "[processes.a.http]\n[processes.a.health]\n",
        "processes = 1\ndeploy = []\nenv = \"x\"\n",
        "name = \"a\"\n[processes.a]\ncommand = \"x\"\ninstances = -1\nstop_timeout = \"-1s\"\n",
        "x = 0x\n",
        "a = \"unterminated",
    ];
    for input in inputs {
        let _ = AppConfig::parse(Path::new("wharf.toml"), input);
    }
}
