//! The error messages are the spec: each case is a bad `wharf.toml` and the
//! exact text `wharf` prints for it.

use std::path::Path;

use wharf_config::AppConfig;

/// Parses `input` (a leading newline is dropped so cases read well) and
/// returns the mismatch, if any, between the printed errors and `expected`.
fn check(input: &str, expected: &str) -> Option<String> {
    let input = input.strip_prefix('\n').unwrap_or(input);
    let expected = expected.strip_prefix('\n').unwrap_or(expected).trim_end();
    match AppConfig::parse(Path::new("wharf.toml"), input) {
        Ok(config) => Some(format!("parsed, but expected errors:\n{config:#?}")),
        Err(errors) if errors.to_string() == expected => None,
        Err(errors) => Some(format!("--- expected\n{expected}\n--- actual\n{errors}\n")),
    }
}

/// (what, input, expected Display output)
const CASES: &[(&str, &str, &str)] = &[
    (
        "unknown top-level key with a close match",
        r#"
name = "hello"
nmae = "hello"
[processes.web]
command = "bin/web"
"#,
        r#"
wharf.toml:2:1: unknown top-level key `nmae`
  = hint: did you mean `name`?
1 error in wharf.toml
"#,
    ),
    (
        "unknown nested key; the typo is not also reported as a missing command",
        r#"
name = "hello"

[processes.web]
comand = "bin/web"
"#,
        r#"
wharf.toml:4:1: unknown key `comand` in [processes.web]
  = hint: did you mean `command`?
1 error in wharf.toml
"#,
    ),
    (
        "unknown keys with no close match list the valid keys",
        r#"
name = "hello"
colour = "blue"
[processes.web]
command = "bin/web"
xyzzy = 3
"#,
        r#"
wharf.toml:2:1: unknown top-level key `colour`
  = hint: valid keys at the top level are `name`, `runtime`, `build`, `release_command`, `env`, `processes`, `deploy`
wharf.toml:5:1: unknown key `xyzzy` in [processes.web]
  = hint: valid keys here are `command`, `instances`, `stop_timeout`, `env`, `http`, `health`
2 errors in wharf.toml
"#,
    ),
    (
        "process and deploy keys at the top level say where they belong",
        r#"
name = "hello"
command = "bin/web"
retain = 3
[processes.web]
command = "bin/web"
"#,
        r#"
wharf.toml:2:1: unknown top-level key `command`
  = hint: `command` belongs to a process: move it under [processes.NAME]
wharf.toml:3:1: unknown top-level key `retain`
  = hint: `retain` belongs in [deploy]
2 errors in wharf.toml
"#,
    ),
    (
        "unknown key in an http sub-table and in [deploy]",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[processes.web.http]
prot = 80
[deploy]
health_timout = "1s"
"#,
        r#"
wharf.toml:5:1: unknown key `prot` in [processes.web.http]
  = hint: valid keys here are `host`, `path`
wharf.toml:7:1: unknown key `health_timout` in [deploy]
  = hint: did you mean `health_timeout`?
2 errors in wharf.toml
"#,
    ),
    (
        "wrong types are all reported, with fixes where obvious",
        r#"
name = 5
[processes.web]
command = ["bin/web"]
instances = "2"
stop_timeout = 10
"#,
        r#"
wharf.toml:1:8: `name` must be a string, found an integer
wharf.toml:3:11: `command` in [processes.web] must be a string, found an array
wharf.toml:4:13: `instances` in [processes.web] must be an integer, found a string
  = hint: remove the quotes: instances = 2
wharf.toml:5:16: `stop_timeout` in [processes.web] must be a duration string, found an integer
  = hint: durations need a unit and quotes, e.g. stop_timeout = "10s"
4 errors in wharf.toml
"#,
    ),
    (
        "wrong table types",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
env = 3
http = "yes"
health = { path = "/up" }
"#,
        r#"
wharf.toml:4:7: `env` in [processes.web] must be a table, found an integer
wharf.toml:5:8: `http` in [processes.web] must be a table, found a string
  = hint: write http = { host = "example.com", path = "/" }
2 errors in wharf.toml
"#,
    ),
    (
        "[[processes]] instead of [processes.NAME]",
        r#"
name = "hello"
[[processes]]
command = "bin/web"
"#,
        r#"
wharf.toml:2:1: `processes` must be a table, found an array
  = hint: write [processes.NAME] (one table per process), not [[processes]]
1 error in wharf.toml
"#,
    ),
    (
        "a process that is not a table",
        r#"
name = "hello"
processes.web = "bin/web"
"#,
        r#"
wharf.toml:2:17: process `web` must be a table, found a string
  = hint: write [processes.web] followed by command = "..."
1 error in wharf.toml
"#,
    ),
    (
        "missing name",
        r#"
[processes.web]
command = "bin/web"
"#,
        r#"
wharf.toml:1:1: missing required key `name`
  = hint: add a line like name = "my-app" at the top of the file
1 error in wharf.toml
"#,
    ),
    (
        "missing processes",
        r#"
name = "hello"
"#,
        r#"
wharf.toml:1:1: no processes defined
  = hint: add at least one, e.g. [processes.web] with command = "bin/server"
1 error in wharf.toml
"#,
    ),
    (
        "empty [processes]",
        r#"
name = "hello"
[processes]
"#,
        r#"
wharf.toml:2:1: [processes] has no processes
  = hint: add at least one, e.g. [processes.web] with command = "bin/server"
1 error in wharf.toml
"#,
    ),
    (
        "missing and empty command",
        r#"
name = "hello"
[processes.web]
instances = 2
[processes.worker]
command = "  "
"#,
        r#"
wharf.toml:2:1: missing required key `command` in [processes.web]
  = hint: add command = "..." to [processes.web]: the shell command that starts it
wharf.toml:5:11: `command` in [processes.worker] must not be empty
  = hint: give the shell command that starts this process, e.g. command = "bin/server"
2 errors in wharf.toml
"#,
    ),
    (
        "bad app and process names",
        r#"
name = "Hello_World"
[processes.Web]
command = "bin/web"
[processes.-worker]
command = "bin/worker"
"#,
        r#"
wharf.toml:1:8: `name` must be lowercase letters, digits and `-`, not starting with `-`; found "Hello_World"
  = hint: try "hello-world"
wharf.toml:2:12: process name must be lowercase letters, digits and `-`, not starting with `-`; found "Web"
  = hint: try "web"
wharf.toml:4:12: process name must be lowercase letters, digits and `-`, not starting with `-`; found "-worker"
  = hint: try "worker"
3 errors in wharf.toml
"#,
    ),
    (
        "empty and overlong names",
        r#"
name = ""
[processes.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]
command = "bin/web"
"#,
        r#"
wharf.toml:1:8: `name` must not be empty
wharf.toml:2:12: process name must be at most 63 characters, found 64
2 errors in wharf.toml
"#,
    ),
    (
        "bad duration",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
stop_timeout = "10 potatoes"
"#,
        r#"
wharf.toml:4:16: `stop_timeout` in [processes.web] must be a duration, found "10 potatoes"
  = hint: write a duration such as "500ms" or "30s"
1 error in wharf.toml
"#,
    ),
    (
        "zero interval, too long timeout, threshold out of range",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
http = {}
health = { interval = "0s", timeout = "2m", threshold = 11 }
"#,
        r#"
wharf.toml:5:23: `interval` in [processes.web.health] must be greater than 0
  = hint: write a duration such as "500ms" or "30s"
wharf.toml:5:39: `timeout` in [processes.web.health] must be at most 60s, found "2m"
wharf.toml:5:57: `threshold` in [processes.web.health] must be between 1 and 10, found 11
3 errors in wharf.toml
"#,
    ),
    (
        "instances 0 and 65, and a literal too big for any integer",
        r#"
name = "hello"
[processes.a]
command = "bin/web"
instances = 0
[processes.b]
command = "bin/web"
instances = 65
[processes.c]
command = "bin/web"
instances = 99999999999999999999999999999999999999999999
"#,
        r#"
wharf.toml:4:13: `instances` in [processes.a] must be between 1 and 64, found 0
wharf.toml:7:13: `instances` in [processes.b] must be between 1 and 64, found 65
wharf.toml:10:13: `instances` in [processes.c] must be between 1 and 64, found 99999999999999999999999999999999999999999999
3 errors in wharf.toml
"#,
    ),
    (
        "deploy settings out of range",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
retain = 0
health_timeout = "0"
drain_timeout = "0s"
"#,
        r#"
wharf.toml:5:10: `retain` in [deploy] must be between 1 and 100, found 0
wharf.toml:6:18: `health_timeout` in [deploy] must be greater than 0
  = hint: write a duration such as "500ms" or "30s"
2 errors in wharf.toml
"#,
    ),
    (
        "duplicate route is reported at the second process in the file",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
http = { host = "hello.localhost" }
[processes.api]
command = "bin/api"
http = { host = "hello.localhost", path = "//" }
"#,
        r#"
wharf.toml:7:1: [processes.api] has the same http route as [processes.web] (host `hello.localhost`, path `/`)
  = hint: give one of them a different `host` or `path`
1 error in wharf.toml
"#,
    ),
    (
        "duplicate route on any host, after trailing-slash trimming",
        r#"
name = "hello"
[processes.b]
command = "bin/web"
http = { path = "/api/" }
[processes.a]
command = "bin/api"
[processes.a.http]
path = "/api"
"#,
        r#"
wharf.toml:7:14: [processes.a] has the same http route as [processes.b] (any host, path `/api`)
  = hint: give one of them a different `host` or `path`
1 error in wharf.toml
"#,
    ),
    (
        "health on a process without http",
        r#"
name = "hello"
[processes.worker]
command = "bin/worker"
health = { path = "/up" }
"#,
        r#"
wharf.toml:4:1: [processes.worker] has `health` but no `http`
  = hint: health checks need `http`; add http = { path = "/" } or remove health
1 error in wharf.toml
"#,
    ),
    (
        "bad env keys and values",
        r#"
name = "hello"
[env]
1BAD = "x"
"my-var" = 1
LIST = [1]
[processes.web]
command = "bin/web"
env = { "a b" = "x" }
"#,
        r#"
wharf.toml:3:1: invalid env key `1BAD` in [env]: it starts with a digit
  = hint: env keys must match [A-Za-z_][A-Za-z0-9_]*, e.g. `LOG_LEVEL`
wharf.toml:4:1: invalid env key `my-var` in [env]: only ASCII letters, digits and `_` are allowed
  = hint: env keys must match [A-Za-z_][A-Za-z0-9_]*, e.g. `LOG_LEVEL`
wharf.toml:5:8: `LIST` in [env] must be a string, found an array
  = hint: env values are strings; numbers and booleans are converted, anything else must be quoted
wharf.toml:8:9: invalid env key `a b` in [processes.web.env]: only ASCII letters, digits and `_` are allowed
  = hint: env keys must match [A-Za-z_][A-Za-z0-9_]*, e.g. `LOG_LEVEL`
4 errors in wharf.toml
"#,
    ),
    (
        "bad hosts and paths",
        r#"
name = "hello"
[processes.a]
command = "bin/web"
http = { host = "Hello.localhost", path = "api" }
[processes.b]
command = "bin/web"
http = { host = "http://b.example.com" }
[processes.c]
command = "bin/web"
http = { host = "c.example.com:8080", path = "/c?x=1" }
[processes.d]
command = "bin/web"
http = { host = "-d.example.com" }
health = { path = "up" }
[processes.e]
command = "bin/web"
http = { host = "" }
"#,
        r#"
wharf.toml:4:17: `host` in [processes.a.http] must be lowercase, found "Hello.localhost"
  = hint: write "hello.localhost"
wharf.toml:4:43: `path` in [processes.a.http] must start with `/`, found "api"
  = hint: write "/api"
wharf.toml:7:17: `host` in [processes.b.http] must be a bare hostname, found "http://b.example.com"
  = hint: leave out the scheme: "b.example.com"
wharf.toml:10:17: `host` in [processes.c.http] must be a bare hostname, found "c.example.com:8080"
  = hint: leave out the port: "c.example.com"
wharf.toml:10:46: `path` in [processes.c.http] must be a plain path, found "/c?x=1"
  = hint: leave out query strings, fragments and spaces
wharf.toml:13:17: `host` in [processes.d.http] is not a valid hostname, found "-d.example.com"
  = hint: use dot-separated labels of lowercase letters, digits and `-`, e.g. "app.example.com"
wharf.toml:14:19: `path` in [processes.d.health] must start with `/`, found "up"
  = hint: write "/up"
wharf.toml:17:17: `host` in [processes.e.http] must not be empty, found ""
  = hint: leave out `host` to match any host
8 errors in wharf.toml
"#,
    ),
    (
        "TOML syntax error",
        r#"
name = "hello"
[processes.web
command = "bin/web"
"#,
        r#"
wharf.toml:2:15: invalid TOML: unclosed table, expected `]`
1 error in wharf.toml
"#,
    ),
    (
        "duplicate key is a syntax error naming the key",
        r#"
name = "hello"
name = "again"
"#,
        r#"
wharf.toml:2:1: invalid TOML: duplicate key `name`
1 error in wharf.toml
"#,
    ),
    (
        "unsupported runtime",
        r#"
name = "hello"
runtime = "docker"
[processes.web]
command = "bin/web"
"#,
        r#"
wharf.toml:2:11: runtime `docker` is not supported yet
  = hint: valid values: `process` (the default)
1 error in wharf.toml
"#,
    ),
    (
        "several errors in one file come out together, in file order",
        r#"
runtime = "docker"
build = 1

[env]
GREETING = { text = "hi" }

[processes.web]
comand = "bin/web"
instances = 0
http = { host = "hello.localhost", path = "/" }
health = { interval = "soon" }

[processes.api]
command = "bin/api"
http = { host = "hello.localhost" }

[deploy]
retain = 101
"#,
        r#"
wharf.toml:1:1: missing required key `name`
  = hint: add a line like name = "my-app" at the top of the file
wharf.toml:1:11: runtime `docker` is not supported yet
  = hint: valid values: `process` (the default)
wharf.toml:2:9: `build` must be a string, found an integer
wharf.toml:5:12: `GREETING` in [env] must be a string, found a table
  = hint: env values are strings; numbers and booleans are converted, anything else must be quoted
wharf.toml:8:1: unknown key `comand` in [processes.web]
  = hint: did you mean `command`?
wharf.toml:9:13: `instances` in [processes.web] must be between 1 and 64, found 0
wharf.toml:11:23: `interval` in [processes.web.health] must be a duration, found "soon"
  = hint: write a duration such as "500ms" or "30s"
wharf.toml:15:1: [processes.api] has the same http route as [processes.web] (host `hello.localhost`, path `/`)
  = hint: give one of them a different `host` or `path`
wharf.toml:18:10: `retain` in [deploy] must be between 1 and 100, found 101
9 errors in wharf.toml
"#,
    ),
];

#[test]
fn every_bad_config_gets_the_expected_errors() {
    assert!(CASES.len() >= 20);
    let failures: Vec<String> = CASES
        .iter()
        .filter_map(|(what, input, expected)| {
            check(input, expected).map(|diff| format!("=== {what}\n{diff}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn one_error_is_singular() {
    let errors = AppConfig::parse(
        Path::new("x/wharf.toml"),
        "name = 1\n[processes.a]\ncommand = \"a\"\n",
    )
    .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors.to_string().ends_with("\n1 error in x/wharf.toml"));
    let error = errors.iter().next().unwrap();
    assert_eq!((error.location.line, error.location.col), (1, 8));
    assert_eq!(error.hint, None);
}
