//! Resolution: defaults, normalisation, env conversion and layering, loading.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use wharf_config::{
    AnalysisSettings, AppConfig, CanaryStep, HealthCheck, HttpRoute, LoadError, RuntimeKind,
    Strategy,
};

mod common;

use common::{MINIMAL, parse};

#[test]
fn defaults_are_filled_in() {
    let config = parse(MINIMAL);
    assert_eq!(config.name, "hello");
    assert_eq!(config.runtime, RuntimeKind::Process);
    assert!(config.env.is_empty());
    assert_eq!(config.build, None);
    assert!(config.release_command.is_empty());
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
    assert_eq!(
        config.deploy.strategy,
        Strategy::BlueGreen {
            bake: Duration::ZERO
        }
    );
    assert_eq!(config.deploy.strategy, Strategy::default());
    assert_eq!(config.deploy.notify, None);
    assert_eq!(config.deploy.analysis, AnalysisSettings::default());
}

#[test]
fn analysis_defaults_are_the_documented_ones() {
    let expected = AnalysisSettings {
        interval: Duration::from_secs(1),
        window: Duration::from_secs(30),
        min_requests: 50,
        min_errors: 5,
        max_error_rate: 0.02,
        max_error_rate_increase: 0.01,
        max_p99_ratio: 2.0,
        p99_floor: Duration::from_millis(50),
        failures_tolerated: 1,
    };
    assert_eq!(AnalysisSettings::default(), expected);
    // An empty table, or one with some keys, keeps the other defaults.
    let config = parse(&format!("{MINIMAL}[deploy.analysis]\n"));
    assert_eq!(config.deploy.analysis, expected);
    let config = parse(&format!(
        "{MINIMAL}[deploy]\nanalysis = {{ max_p99_ratio = 3, window = \"1m\" }}\n"
    ));
    assert_eq!(
        config.deploy.analysis,
        AnalysisSettings {
            max_p99_ratio: 3.0,
            window: Duration::from_secs(60),
            ..expected
        }
    );
}

#[test]
fn full_canary_config() {
    let config = parse(
        r#"
name = "hello"
[processes.web]
command = "bin/hello"
http = {}
[deploy]
strategy = "canary"
steps = [{ weight = 10, pause = "30s" }, { weight = 50, pause = "1m" }, { weight = 90 }]
notify = "https://hooks.example.com:8443/wharf?app=hello"
[deploy.analysis]
interval = "2s"
window = "1m"
min_requests = 0
min_errors = 1
max_error_rate = 0
max_error_rate_increase = 1
max_p99_ratio = 1.5
p99_floor = "0s"
failures_tolerated = 0
"#,
    );
    let steps = vec![
        CanaryStep {
            weight: 10,
            pause: Some(Duration::from_secs(30)),
        },
        CanaryStep {
            weight: 50,
            pause: Some(Duration::from_secs(60)),
        },
        CanaryStep {
            weight: 90,
            pause: None,
        },
    ];
    assert_eq!(config.deploy.strategy, Strategy::Canary { steps });
    assert_eq!(
        config.deploy.notify.as_deref(),
        Some("https://hooks.example.com:8443/wharf?app=hello")
    );
    assert_eq!(
        config.deploy.analysis,
        AnalysisSettings {
            interval: Duration::from_secs(2),
            window: Duration::from_secs(60),
            min_requests: 0,
            min_errors: 1,
            max_error_rate: 0.0,
            max_error_rate_increase: 1.0,
            max_p99_ratio: 1.5,
            p99_floor: Duration::ZERO,
            failures_tolerated: 0,
        }
    );
    // The other deploy settings keep their defaults.
    assert_eq!(config.deploy.retain, 5);
}

#[test]
fn canary_steps_as_an_array_of_tables() {
    let inline = parse(&format!(
        "{MINIMAL}[deploy]\nstrategy = \"canary\"\nsteps = [{{ weight = 1 }}, {{ weight = 99, pause = \"1h 30m\" }}]\n"
    ));
    let tables = parse(&format!(
        "{MINIMAL}[deploy]\nstrategy = \"canary\"\n[[deploy.steps]]\nweight = 1\n[[deploy.steps]]\nweight = 99\npause = \"1h 30m\"\n"
    ));
    assert_eq!(inline, tables);
    let Strategy::Canary { steps } = &tables.deploy.strategy else {
        panic!("expected canary, got {:?}", tables.deploy.strategy);
    };
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[1].pause, Some(Duration::from_secs(5400)));
}

#[test]
fn twenty_canary_steps_are_fine() {
    let steps: Vec<String> = (1..=20).map(|w| format!("{{ weight = {w} }}")).collect();
    let config = parse(&format!(
        "{MINIMAL}[deploy]\nstrategy = \"canary\"\nsteps = [{}]\n",
        steps.join(", ")
    ));
    let Strategy::Canary { steps } = config.deploy.strategy else {
        panic!("expected canary");
    };
    assert_eq!(steps.len(), 20);
    assert!(steps.iter().all(|s| s.pause.is_none()));
}

#[test]
fn blue_green_with_bake() {
    let config = parse(&format!(
        "{MINIMAL}[deploy]\nstrategy = \"blue-green\"\nbake = \"30s\"\nnotify = \"http://[::1]:9000/hooks\"\n"
    ));
    assert_eq!(
        config.deploy.strategy,
        Strategy::BlueGreen {
            bake: Duration::from_secs(30)
        }
    );
    assert_eq!(
        config.deploy.notify.as_deref(),
        Some("http://[::1]:9000/hooks")
    );
    assert_eq!(config.deploy.analysis, AnalysisSettings::default());
    // `strategy` may be left out: blue-green is the default.
    let implicit = parse(&format!("{MINIMAL}[deploy]\nbake = \"30s\"\n"));
    assert_eq!(implicit.deploy.strategy, config.deploy.strategy);
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
        hosts: Vec::new(),
        path_prefix: "/".into(),
        tls: None,
        hsts: false,
        max_body: 100 * 1024 * 1024,
        timeout: Duration::from_secs(60),
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
    assert_eq!(route.hosts, ["hello.localhost"]);
    assert_eq!(
        config.deploy.notify.as_deref(),
        Some("http://127.0.0.1:9000/hooks/wharf")
    );
    let cleanup = &config.cron["cleanup"];
    assert_eq!(cleanup.schedule.expr(), "0 3 * * *");
    assert_eq!(cleanup.schedule.time_zone().name(), "Europe/Paris");
    assert_eq!(cleanup.process, "worker");
    // Everything else in it is a default, spelled out.
    assert!(cleanup.catch_up);
    assert_eq!(cleanup.timeout, Duration::from_secs(3600));
    assert_eq!(config.deploy.retain, 5);
    assert_eq!(config.deploy.strategy, Strategy::default());
    assert_eq!(config.deploy.analysis, AnalysisSettings::default());
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
fn canary_config_survives_json() {
    let config = parse(&format!(
        "{MINIMAL}[deploy]\nstrategy = \"canary\"\nsteps = [{{ weight = 10, pause = \"30s\" }}, {{ weight = 50 }}]\n[deploy.analysis]\nmax_error_rate = 0.05\n"
    ));
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(
        json["deploy"]["strategy"],
        serde_json::json!({
            "kind": "canary",
            "steps": [{ "weight": 10, "pause": "30s" }, { "weight": 50 }]
        })
    );
    assert_eq!(json["deploy"]["analysis"]["max_error_rate"], 0.05);
    assert_eq!(json["deploy"]["analysis"]["p99_floor"], "50ms");
    assert!(json["deploy"].get("notify").is_none());
    let back: AppConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back, config);

    let blue_green = parse(&format!("{MINIMAL}[deploy]\nbake = \"1m\"\n"));
    let json = serde_json::to_value(&blue_green).unwrap();
    assert_eq!(
        json["deploy"]["strategy"],
        serde_json::json!({ "kind": "blue-green", "bake": "1m" })
    );
}

#[test]
fn configs_stored_before_strategies_still_load() {
    // Releases stored by an older wharf have no strategy, notify or analysis.
    let mut json = serde_json::to_value(parse(MINIMAL)).unwrap();
    let deploy = json["deploy"].as_object_mut().unwrap();
    for key in ["strategy", "notify", "analysis"] {
        deploy.remove(key);
    }
    let back: AppConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back, parse(MINIMAL));
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
        "name = \"a\"\n[deploy]\nstrategy = \"canary\"\nsteps = [[], {}, { weight = -1, pause = \"-1s\" }]\n",
        "[deploy]\nnotify = \"http://[\"\n[deploy.analysis]\nmax_p99_ratio = -inf\nmin_requests = 1e400\n",
        "[deploy]\nnotify = \"http://é@:\"\nsteps = 1\nanalysis = []\n",
        "[deploy]\nnotify = \"https://[::1]x/\"\n[[deploy.steps]]\n[[deploy.steps]]\nweight = 99999999999999999999999999999999999999999\n",
    ];
    for input in inputs {
        let _ = AppConfig::parse(Path::new("wharf.toml"), input);
    }
}

/// Compose's order: the app's files in order (a later one wins), `[env]`
/// over them; a process's files over the app's env, its `[env]` over all.
/// Values of `[secrets] env_file` files become secrets, never env.
#[test]
fn env_files_layer_in_compose_order() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(".env", "A=from-env\nB=from-env\nC=from-env\nHOST=db\n");
    write(
        ".env.production",
        "B=from-production\nURL=postgres://${HOST}/app\n",
    );
    write(".env.web", "C=from-web-file\nD=from-web-file\n");
    write(".env.secrets", "API_KEY=s3cret\nA=secret-a\n");
    let config = parse(
        r#"
name = "shop"
env_file = [".env", ".env.production"]
[env]
C = "from-toml"
[secrets]
env_file = ".env.secrets"
[processes.web]
command = "bin/web"
env_file = ".env.web"
env = { D = "from-process-toml" }
"#,
    )
    .with_env_files(dir.path())
    .unwrap();
    assert_eq!(
        config.env,
        env(&[
            ("B", "from-production"),
            ("C", "from-toml"),
            ("HOST", "db"),
            ("URL", "postgres://db/app"),
        ])
    );
    assert_eq!(
        config.processes["web"].env,
        env(&[("C", "from-web-file"), ("D", "from-process-toml")])
    );
    let secrets: Vec<&String> = config.secrets.keys().collect();
    assert_eq!(secrets, ["A", "API_KEY"]);
    assert!(!config.to_toml().contains("s3cret"));
}

#[test]
fn env_file_problems_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "GOOD=1\nnot a line\n").unwrap();
    let err = parse(
        r#"
name = "shop"
env_file = [".env", ".env.missing"]
[processes.web]
command = "bin/web"
"#,
    )
    .with_env_files(dir.path())
    .unwrap_err()
    .to_string();
    assert!(err.contains(".env:2:"), "{err}");
    assert!(err.contains(".env.missing"), "{err}");
}

#[test]
fn relative_volume_sources_become_absolute_at_deploy() {
    let config = parse(
        r#"
name = "shop"
runtime = "docker"
[processes.web]
volumes = ["./config/app.yml:/app/config.yml:ro", "storage:/app/storage"]
[accessories.db]
image = "mysql:8"
volumes = ["./config/my.cnf:/etc/mysql/my.cnf:ro"]
"#,
    )
    .with_volume_paths(Path::new("/srv/shop"));
    let web: Vec<String> = config.processes["web"]
        .volumes
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        web,
        [
            "/srv/shop/config/app.yml:/app/config.yml:ro",
            "storage:/app/storage"
        ]
    );
    assert_eq!(
        config.accessories["db"].volumes[0].source,
        "/srv/shop/config/my.cnf"
    );
}

/// `[cron.NAME]` with only the required keys: every default filled in.
#[test]
fn cron_defaults_are_filled_in() {
    let config = parse(
        r#"
name = "shop"
[processes.worker]
command = "bin/worker"
[processes.web]
command = "bin/web"
[cron.cleanup]
schedule = "0 3 * * *"
command = "bin/rails cleanup"
"#,
    );
    let names: Vec<&String> = config.cron.keys().collect();
    assert_eq!(names, ["cleanup"]);
    let entry = &config.cron["cleanup"];
    assert_eq!(entry.name, "cleanup");
    assert_eq!(entry.schedule.expr(), "0 3 * * *");
    assert_eq!(entry.schedule.time_zone().name(), "UTC");
    assert_eq!(entry.command, "bin/rails cleanup");
    // The first process in the file, not the first by name.
    assert_eq!(entry.process, "worker");
    assert!(entry.catch_up);
    assert_eq!(entry.timeout, Duration::from_secs(3600));
    // No cron at all is an empty map.
    assert!(parse(MINIMAL).cron.is_empty());
}

#[test]
fn cron_keys_are_resolved() {
    let config = parse(&format!(
        r#"{MINIMAL}[processes.worker]
command = "bin/worker"
[cron.report]
schedule = "*/15 9-17 * * MON-FRI"
time_zone = "America/New_York"
command = "bin/report --all"
process = "worker"
catch_up = false
timeout = "1h 30m"
"#
    ));
    let entry = &config.cron["report"];
    assert_eq!(entry.schedule.expr(), "*/15 9-17 * * MON-FRI");
    assert_eq!(entry.schedule.time_zone().name(), "America/New_York");
    assert_eq!(entry.command, "bin/report --all");
    assert_eq!(entry.process, "worker");
    assert!(!entry.catch_up);
    assert_eq!(entry.timeout, Duration::from_secs(5400));
}

/// 2024-01-01T00:00:00Z, a Monday, in milliseconds.
const NEW_YEAR_2024: i64 = 1_704_067_200_000;
const HOUR_MS: i64 = 3_600_000;

#[test]
fn cron_schedule_forms() {
    let next = |schedule: &str| {
        let config = parse(&format!(
            "{MINIMAL}[cron.job]\nschedule = \"{schedule}\"\ncommand = \"bin/job\"\n"
        ));
        let s = &config.cron["job"].schedule;
        (s.has_seconds(), s.next_after(NEW_YEAR_2024))
    };
    let at = |ms: i64| (false, Some(NEW_YEAR_2024 + ms));
    // Five fields.
    assert_eq!(next("0 3 * * *"), at(3 * HOUR_MS));
    assert_eq!(next("30 * * * *"), at(HOUR_MS / 2));
    // Nicknames.
    assert_eq!(next("@hourly"), at(HOUR_MS));
    assert_eq!(next("@daily"), at(24 * HOUR_MS));
    assert_eq!(next("@midnight"), at(24 * HOUR_MS));
    assert_eq!(next("@weekly"), at(6 * 24 * HOUR_MS));
    assert_eq!(next("@monthly"), at(31 * 24 * HOUR_MS));
    assert_eq!(next("@yearly"), at(366 * 24 * HOUR_MS));
    assert_eq!(next("@annually"), next("@yearly"));
    // Six fields: seconds first.
    assert_eq!(next("*/10 * * * * *"), (true, Some(NEW_YEAR_2024 + 10_000)));
    assert_eq!(
        next("15 0 3 * * *"),
        (true, Some(NEW_YEAR_2024 + 3 * HOUR_MS + 15_000))
    );
}

#[test]
fn cron_time_zone_is_applied() {
    let entry = |tz: &str| {
        let config = parse(&format!(
            "{MINIMAL}[cron.job]\nschedule = \"0 3 * * *\"\n{tz}command = \"bin/job\"\n"
        ));
        config.cron["job"].schedule.clone()
    };
    let utc = entry("");
    let paris = entry("time_zone = \"Europe/Paris\"\n");
    assert_eq!(paris.time_zone().name(), "Europe/Paris");
    assert_eq!(entry("time_zone = \"UTC\"\n"), utc);
    // 03:00 in Paris is 02:00 UTC in winter (CET) and 01:00 UTC in summer.
    assert_eq!(
        utc.next_after(NEW_YEAR_2024),
        Some(NEW_YEAR_2024 + 3 * HOUR_MS)
    );
    assert_eq!(
        paris.next_after(NEW_YEAR_2024),
        Some(NEW_YEAR_2024 + 2 * HOUR_MS)
    );
    let july_first = 1_719_792_000_000; // 2024-07-01T00:00:00Z
    assert_eq!(paris.next_after(july_first), Some(july_first + HOUR_MS));
}

#[test]
fn cron_entries_survive_json() {
    let config = parse(&format!(
        "{MINIMAL}[cron.cleanup]\nschedule = \"@daily\"\ntime_zone = \"Europe/Paris\"\ncommand = \"bin/cleanup\"\ntimeout = \"10m\"\n"
    ));
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(
        json["cron"]["cleanup"],
        serde_json::json!({
            "name": "cleanup",
            "schedule": { "expr": "@daily", "time_zone": "Europe/Paris" },
            "command": "bin/cleanup",
            "process": "web",
            "catch_up": true,
            "timeout": "10m"
        })
    );
    let back: AppConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back, config);
    // Configs without cron entries store none, and read back without any.
    let json = serde_json::to_value(parse(MINIMAL)).unwrap();
    assert!(json.get("cron").is_none());
    let back: AppConfig = serde_json::from_value(json).unwrap();
    assert!(back.cron.is_empty());
}
