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
  = hint: valid keys at the top level are `name`, `runtime`, `image`, `build`, `release_command`, `asset_path`, `env`, `env_file`, `secrets`, `processes`, `accessories`, `cron`, `ci`, `deploy`
wharf.toml:5:1: unknown key `xyzzy` in [processes.web]
  = hint: valid keys here are `command`, `image`, `build`, `entrypoint`, `instances`, `stop_timeout`, `env`, `env_file`, `volumes`, `ports`, `http`, `health`, `port`, `memory`, `cpus`, `restart`
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
  = hint: valid keys here are `host`, `hosts`, `path`, `tls`, `hsts`, `max_body`, `timeout`
wharf.toml:7:1: unknown key `health_timout` in [deploy]
  = hint: did you mean `health_timeout`?
2 errors in wharf.toml
"#,
    ),
    (
        "tls needs a host, files need both paths, hsts needs tls, limits must be sizes and durations",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
http = { path = "/", tls = true, max_body = "lots", timeout = "0s" }
[processes.admin]
command = "bin/admin"
http = { host = "admin.example.com", tls = { cert = "admin.pem" }, hsts = "yes" }
[processes.api]
command = "bin/api"
http = { host = "api.example.com", path = "/api", hsts = true, tls = "acme" }
"#,
        r#"
wharf.toml:4:28: `tls` in [processes.web.http] needs `host`
  = hint: a certificate is for a host name: add host = "shop.example.com"
wharf.toml:4:45: `max_body` in [processes.web.http] must be a size of more than 0, found "lots"
  = hint: write e.g. "100MiB" or "2GiB" (also KiB, or a number of bytes)
wharf.toml:4:63: `timeout` in [processes.web.http] must be greater than 0
  = hint: write a duration such as "500ms" or "30s"
wharf.toml:7:44: `key` in [processes.admin.http.tls] is missing
  = hint: write tls = { cert = "certs/site.pem", key = "certs/site.key" } (paths relative to the app's directory)
wharf.toml:7:75: `hsts` in [processes.admin.http] must be true or false, found a string
wharf.toml:10:58: `hsts` in [processes.api.http] needs `tls`
  = hint: HSTS tells browsers to use HTTPS only; add tls = true
wharf.toml:10:70: `tls` in [processes.api.http] must be true or a table, found a string
  = hint: write tls = true (a certificate by ACME) or tls = { cert = "cert.pem", key = "key.pem" }
7 errors in wharf.toml
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
        "unknown runtime",
        r#"
name = "hello"
runtime = "podman"
[processes.web]
command = "bin/web"
"#,
        r#"
wharf.toml:2:11: unknown runtime `podman`
  = hint: valid values: `process` (the default) and `docker`
1 error in wharf.toml
"#,
    ),
    (
        "docker-only keys under the process runtime",
        r#"
name = "hello"
image = "shop:1"
[build]
dockerfile = "Dockerfile"
[processes.web]
command = "bin/web"
port = 3000
memory = "512MiB"
[accessories.db]
image = "postgres:16"
"#,
        r#"
wharf.toml:2:9: `image` needs runtime = "docker"
  = hint: set runtime = "docker" at the top of the file to run containers
wharf.toml:3:2: a [build] table needs runtime = "docker"
  = hint: under the process runtime, write build = "sh build.sh" (a command run before the release is prepared)
wharf.toml:7:1: `port` in [processes.web] needs runtime = "docker"
  = hint: set runtime = "docker" at the top of the file to run containers
wharf.toml:8:1: `memory` in [processes.web] needs runtime = "docker"
  = hint: set runtime = "docker" at the top of the file to run containers
wharf.toml:9:14: accessory `db` needs runtime = "docker"
  = hint: set runtime = "docker" at the top of the file to run containers
5 errors in wharf.toml
"#,
    ),
    (
        "docker: build as a command, image with a build table, bad paths",
        r#"
name = "hello"
runtime = "docker"
build = "make"
[processes.web]
"#,
        r#"
wharf.toml:3:9: under runtime = "docker", `build` is a table
  = hint: write [build] with command = "make" (run before the image is built) and, if needed, dockerfile = "Dockerfile"
1 error in wharf.toml
"#,
    ),
    (
        "docker: a prebuilt image and a Dockerfile at once",
        r#"
name = "hello"
runtime = "docker"
image = "shop:1"
[build]
dockerfile = "../Dockerfile"
context = "/srv"
target = ""
[processes.web]
"#,
        r#"
wharf.toml:4:2: [build] says how to build an image, but `image` names a prebuilt one
  = hint: keep `image` to deploy that image, or remove it to build from the Dockerfile
wharf.toml:5:14: `dockerfile` in [build] must be a path inside the app's directory, found "../Dockerfile"
  = hint: write it relative to the directory of wharf.toml, without `..`
wharf.toml:6:11: `context` in [build] must be a path inside the app's directory, found "/srv"
  = hint: write it relative to the directory of wharf.toml, without `..`
wharf.toml:7:10: `target` in [build] must not be empty
4 errors in wharf.toml
"#,
    ),
    (
        "docker: limits, port and restart out of range",
        r#"
name = "hello"
runtime = "docker"
[processes.web]
port = 0
memory = "1MiB"
cpus = 0
restart = "sometimes"
[processes.worker]
memory = "lots"
"#,
        r#"
wharf.toml:4:8: `port` in [processes.web] must be between 1 and 65535, found 0
wharf.toml:5:10: `memory` in [processes.web] must be at least 6MiB, found "1MiB"
wharf.toml:6:8: `cpus` in [processes.web] must be more than 0 and at most 1024, found 0
wharf.toml:7:11: `restart` in [processes.web] must be "always", "on-failure" or "never", found "sometimes"
  = hint: "always" (the default) restarts after any exit; "on-failure" after a non-zero exit
wharf.toml:9:10: `memory` in [processes.worker] must be a size, found "lots"
  = hint: write e.g. "512MiB" or "1GiB" (also KiB, k, m, g, or a number of bytes)
5 errors in wharf.toml
"#,
    ),
    (
        "secrets: shapes, names, clashes with env",
        r#"
name = "hello"
[env]
TOKEN = "plain"
[secrets]
TOKEN = { env = "TOKEN" }
DB_PASSWORD = "hunter2"
API_KEY = { env = "API_KEY", file = "/etc/key" }
CERT = { file = "certs/app.pem" }
NOTHING = {}
1BAD = { env = "lower-case" }
[processes.web]
command = "bin/web"
"#,
        r#"
wharf.toml:5:1: `TOKEN` is both a secret and a plain env var
  = hint: keep one of them
wharf.toml:6:15: secret `DB_PASSWORD` in [secrets] must be a table, found a string
  = hint: write KEY = { env = "NAME" } (from the server's environment) or KEY = { file = "/path" }
wharf.toml:7:11: secret `API_KEY` in [secrets] has both `env` and `file`
  = hint: keep one: where the value comes from
wharf.toml:8:17: `file` of secret `CERT` must be an absolute path, found "certs/app.pem"
  = hint: the server reads it when deploying; write e.g. file = "/etc/wharf/secrets/db-password"
wharf.toml:9:11: secret `NOTHING` in [secrets] says neither `env` nor `file`
  = hint: write KEY = { env = "NAME" } (from the server's environment) or KEY = { file = "/path" }
wharf.toml:10:1: invalid secret name `1BAD` in [secrets]: it starts with a digit
  = hint: env keys must match [A-Za-z_][A-Za-z0-9_]*, e.g. `LOG_LEVEL`
wharf.toml:10:16: `env` of secret `1BAD` must name an environment variable: only ASCII letters, digits and `_` are allowed
  = hint: env keys must match [A-Za-z_][A-Za-z0-9_]*, e.g. `LOG_LEVEL`
7 errors in wharf.toml
"#,
    ),
    (
        "accessories: missing image, bad ports, volumes, health, name clash",
        r#"
name = "hello"
runtime = "docker"
[processes.web]
[accessories.web]
image = "nginx"
[accessories.db]
ports = ["5432:x", "localhost:1:1"]
volumes = ["data", "./data:/data"] # a path in the app dir is fine
health = { interval = "2s" }
[accessories.cache]
image = ""
command = " "
"#,
        r#"
wharf.toml:4:14: accessory `web` has the name of a process
  = hint: both are reached by name on the app's network; rename one
wharf.toml:6:1: missing required key `image` in [accessories.db]
  = hint: add image = "..." to [accessories.db], e.g. image = "postgres:16", or build = { dockerfile = "..." } to build it from the app's directory
wharf.toml:7:10: port "5432:x" in [accessories.db] has `x` where a port (1 to 65535) belongs
  = hint: write "[HOST_IP:]HOST_PORT:CONTAINER_PORT[/udp]", e.g. "127.0.0.1:5432:5432"
wharf.toml:7:20: port "localhost:1:1" in [accessories.db] has `localhost` where an IP address belongs
  = hint: write "[HOST_IP:]HOST_PORT:CONTAINER_PORT[/udp]", e.g. "127.0.0.1:5432:5432"
wharf.toml:8:12: volume "data" in [accessories.db] must be SOURCE:TARGET or SOURCE:TARGET:ro
  = hint: write "NAME:/path/in/container" (a named volume), "/host/path:/path/in/container[:ro]" or "./path/in/app:/path/in/container[:ro]"
wharf.toml:9:1: missing required key `command` in [accessories.db.health]
  = hint: add command = "...": run in the container, exit 0 means healthy
wharf.toml:11:9: `image` in [accessories.cache] must not be empty
wharf.toml:12:11: `command` in [accessories.cache] must not be empty
  = hint: leave it out to run the image's CMD
8 errors in wharf.toml
"#,
    ),
    (
        "accessories built from the app's directory",
        r#"
name = "hello"
runtime = "docker"
[processes.web]
[accessories.kv]
image = "hello-kv"
build = { dockerfile = "Dockerfile" }
[accessories.cache]
build = { command = "make", context = "../shared", target = "", args = { 1X = "a" } }
"#,
        r#"
wharf.toml:6:1: [accessories.kv] has both `image` and `build`
  = hint: keep image = "hello-kv" to run that image, or `build` to build one from the app's directory
wharf.toml:8:11: unknown key `command` in [accessories.cache.build]
  = hint: valid keys here are `dockerfile`, `context`, `target`, `args`
wharf.toml:8:39: `context` in [accessories.cache.build] must be a path inside the app's directory, found "../shared"
  = hint: write it relative to the directory of wharf.toml, without `..`
wharf.toml:8:61: `target` in [accessories.cache.build] must not be empty
wharf.toml:8:74: invalid env key `1X` in [accessories.cache.build.args]: it starts with a digit
  = hint: env keys must match [A-Za-z_][A-Za-z0-9_]*, e.g. `LOG_LEVEL`
5 errors in wharf.toml
"#,
    ),
    (
        "several errors in one file come out together, in file order",
        r#"
runtime = "podman"
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
wharf.toml:1:11: unknown runtime `podman`
  = hint: valid values: `process` (the default) and `docker`
wharf.toml:2:9: `build` must be a string or a table, found an integer
  = hint: write build = "sh build.sh" (a command), or a [build] table for docker images
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
    (
        "unknown strategy with a close match",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
strategy = "bluegreen"
"#,
        r#"
wharf.toml:5:12: unknown strategy `bluegreen` in [deploy]
  = hint: did you mean `blue-green`? valid values: `blue-green` (the default), `canary`
1 error in wharf.toml
"#,
    ),
    (
        "unknown strategy lists the valid ones; bake and steps are not judged against it",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
strategy = "rolling"
bake = "30s"
steps = [{ weight = 50 }]
"#,
        r#"
wharf.toml:5:12: unknown strategy `rolling` in [deploy]
  = hint: valid values: `blue-green` (the default), `canary`
1 error in wharf.toml
"#,
    ),
    (
        "steps with the default strategy",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
steps = [{ weight = 10 }]
"#,
        r#"
wharf.toml:5:1: `steps` in [deploy] only applies to strategy = "canary"
  = hint: set strategy = "canary" or remove `steps`
1 error in wharf.toml
"#,
    ),
    (
        "[[deploy.steps]] with strategy = \"blue-green\" is reported at the header",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
strategy = "blue-green"
[[deploy.steps]]
weight = 10
"#,
        r#"
wharf.toml:6:10: `steps` in [deploy] only applies to strategy = "canary"
  = hint: set strategy = "canary" or remove `steps`
1 error in wharf.toml
"#,
    ),
    (
        "bake with canary, even when bake itself is also wrong",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
strategy = "canary"
steps = [{ weight = 50, pause = "1m" }]
bake = 30
"#,
        r#"
wharf.toml:7:1: `bake` in [deploy] only applies to strategy = "blue-green"
  = hint: remove `bake` (a canary is analysed during its steps) or set strategy = "blue-green"
wharf.toml:7:8: `bake` in [deploy] must be a duration string, found an integer
  = hint: durations need a unit and quotes, e.g. bake = "30s"
2 errors in wharf.toml
"#,
    ),
    (
        "canary without steps is reported at the strategy",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
strategy = "canary"
"#,
        r#"
wharf.toml:5:12: strategy = "canary" needs `steps` in [deploy]
  = hint: add the new release's traffic share per step, e.g. steps = [{ weight = 10, pause = "30s" }, { weight = 50 }]
1 error in wharf.toml
"#,
    ),
    (
        "a typo of steps with canary is reported only as a typo",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
strategy = "canary"
step = [{ weight = 10 }]
"#,
        r#"
wharf.toml:6:1: unknown key `step` in [deploy]
  = hint: did you mean `steps`?
1 error in wharf.toml
"#,
    ),
    (
        "empty steps",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
strategy = "canary"
steps = []
"#,
        r#"
wharf.toml:6:9: `steps` in [deploy] must not be empty
  = hint: add at least one step, e.g. steps = [{ weight = 10, pause = "30s" }, { weight = 50 }]
1 error in wharf.toml
"#,
    ),
    (
        "step weights out of range, 100, and not increasing",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
strategy = "canary"
steps = [{ weight = 0 }, { weight = 30 }, { weight = 30 }, { weight = 20 }, { weight = 100 }]
"#,
        r#"
wharf.toml:6:21: `weight` in [deploy] step 1 must be between 1 and 99, found 0
wharf.toml:6:54: `weight` in [deploy] step 3 must be greater than the weight of step 2 (30), found 30
  = hint: weights must increase from step to step
wharf.toml:6:71: `weight` in [deploy] step 4 must be greater than the weight of step 3 (30), found 20
  = hint: weights must increase from step to step
wharf.toml:6:88: `weight` in [deploy] step 5 must be between 1 and 99, found 100
  = hint: the new release gets 100% after the last step by itself; remove this step
4 errors in wharf.toml
"#,
    ),
    (
        "step shape: unknown key, missing weight, not a table, quoted weight",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
strategy = "canary"
steps = [{ weight = 10, paus = "1m" }, { pause = "1m" }, 50, { weight = "60" }]
"#,
        r#"
wharf.toml:6:25: unknown key `paus` in [deploy] step 1
  = hint: did you mean `pause`?
wharf.toml:6:40: missing required key `weight` in [deploy] step 2
  = hint: add weight = N: the new release's share of traffic in percent, 1 to 99
wharf.toml:6:58: [deploy] step 3 must be a table, found an integer
  = hint: write steps = [{ weight = 10, pause = "30s" }, { weight = 50 }]
wharf.toml:6:73: `weight` in [deploy] step 4 must be an integer, found a string
  = hint: remove the quotes: weight = 60
4 errors in wharf.toml
"#,
    ),
    (
        "step pauses: zero, not a duration, no unit",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
strategy = "canary"
[[deploy.steps]]
weight = 10
pause = "0s"
[[deploy.steps]]
weight = 20
pause = "soon"
[[deploy.steps]]
weight = 30
pause = 30
"#,
        r#"
wharf.toml:8:9: `pause` in [deploy] step 1 must be greater than 0
  = hint: leave out `pause` to wait for `wharf promote`, or write a duration such as "30s"
wharf.toml:11:9: `pause` in [deploy] step 2 must be a duration, found "soon"
  = hint: write a duration such as "500ms" or "30s"
wharf.toml:14:9: `pause` in [deploy] step 3 must be a duration string, found an integer
  = hint: durations need a unit and quotes, e.g. pause = "30s"
3 errors in wharf.toml
"#,
    ),
    (
        "more than 20 steps",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
strategy = "canary"
steps = [
  { weight = 1 }, { weight = 2 }, { weight = 3 }, { weight = 4 }, { weight = 5 },
  { weight = 6 }, { weight = 7 }, { weight = 8 }, { weight = 9 }, { weight = 10 },
  { weight = 11 }, { weight = 12 }, { weight = 13 }, { weight = 14 }, { weight = 15 },
  { weight = 16 }, { weight = 17 }, { weight = 18 }, { weight = 19 }, { weight = 20 },
  { weight = 21 },
]
"#,
        r#"
wharf.toml:6:9: `steps` in [deploy] must have at most 20 steps, found 21
  = hint: use fewer, bigger steps
1 error in wharf.toml
"#,
    ),
    (
        "steps and analysis of the wrong type",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
strategy = "canary"
steps = { weight = 10 }
analysis = "strict"
"#,
        r#"
wharf.toml:6:9: `steps` in [deploy] must be an array, found a table
  = hint: write steps = [{ weight = 10, pause = "30s" }, { weight = 50 }]
wharf.toml:7:12: `analysis` in [deploy] must be a table, found a string
  = hint: write [deploy.analysis] followed by its keys, e.g. max_error_rate = 0.02
2 errors in wharf.toml
"#,
    ),
    (
        "notify with another scheme",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
notify = "ftp://hooks.example.com/wharf"
"#,
        r#"
wharf.toml:5:10: `notify` in [deploy] must be an http:// or https:// URL, found "ftp://hooks.example.com/wharf"
  = hint: write a URL such as "http://127.0.0.1:9000/hooks/wharf"
1 error in wharf.toml
"#,
    ),
    (
        "notify without a host",
        r#"
name = "hello"
[processes.a]
command = "bin/web"
[deploy]
notify = "https:///hooks/wharf"
"#,
        r#"
wharf.toml:5:10: `notify` in [deploy] must have a host, found "https:///hooks/wharf"
  = hint: write a URL such as "http://127.0.0.1:9000/hooks/wharf"
1 error in wharf.toml
"#,
    ),
    (
        "notify with a bad port",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
notify = "http://127.0.0.1:99999/hooks"
"#,
        r#"
wharf.toml:5:10: `notify` in [deploy] must have a port between 1 and 65535, found "http://127.0.0.1:99999/hooks"
  = hint: leave out the port for the scheme's default
1 error in wharf.toml
"#,
    ),
    (
        "notify without a scheme",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
notify = "hooks.example.com/wharf"
"#,
        r#"
wharf.toml:5:10: `notify` in [deploy] must be an http:// or https:// URL, found "hooks.example.com/wharf"
  = hint: write a URL such as "http://127.0.0.1:9000/hooks/wharf"
1 error in wharf.toml
"#,
    ),
    (
        "analysis values out of range",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy.analysis]
min_requests = -1
min_errors = 1000001
max_error_rate = 2
max_error_rate_increase = -0.5
max_p99_ratio = 0.5
p99_floor = "fast"
failures_tolerated = 11
"#,
        r#"
wharf.toml:5:16: `min_requests` in [deploy.analysis] must be between 0 and 1000000, found -1
wharf.toml:6:14: `min_errors` in [deploy.analysis] must be between 0 and 1000000, found 1000001
wharf.toml:7:18: `max_error_rate` in [deploy.analysis] must be between 0 and 1, found 2
  = hint: rates are fractions: 0.02 is 2%
wharf.toml:8:27: `max_error_rate_increase` in [deploy.analysis] must be between 0 and 1, found -0.5
  = hint: rates are fractions: 0.02 is 2%
wharf.toml:9:17: `max_p99_ratio` in [deploy.analysis] must be at least 1.0, found 0.5
  = hint: it limits new p99 / stable p99: 2.0 fails a release more than twice as slow as the stable one
wharf.toml:10:13: `p99_floor` in [deploy.analysis] must be a duration, found "fast"
  = hint: write a duration such as "500ms" or "30s"
wharf.toml:11:22: `failures_tolerated` in [deploy.analysis] must be between 0 and 10, found 11
7 errors in wharf.toml
"#,
    ),
    (
        "analysis numbers of the wrong type, nan and inf",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy.analysis]
max_error_rate = "0.05"
max_error_rate_increase = nan
max_p99_ratio = inf
min_requests = 1.5
"#,
        r#"
wharf.toml:5:18: `max_error_rate` in [deploy.analysis] must be a number, found a string
  = hint: remove the quotes: max_error_rate = 0.05
wharf.toml:6:27: `max_error_rate_increase` in [deploy.analysis] must be between 0 and 1, found nan
  = hint: rates are fractions: 0.02 is 2%
wharf.toml:7:17: `max_p99_ratio` in [deploy.analysis] must be a finite number, found inf
wharf.toml:8:16: `min_requests` in [deploy.analysis] must be an integer, found a float
4 errors in wharf.toml
"#,
    ),
    (
        "window shorter than interval",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy.analysis]
interval = "5s"
window = "2s"
"#,
        r#"
wharf.toml:6:10: `window` in [deploy.analysis] must be at least `interval` (5s), found "2s"
  = hint: each check looks back over `window`, so it cannot be shorter than the time between checks
1 error in wharf.toml
"#,
    ),
    (
        "interval longer than the default window",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
analysis = { interval = "1m" }
"#,
        r#"
wharf.toml:5:25: `interval` in [deploy.analysis] must be at most `window` (30s, the default), found "1m"
  = hint: shorten `interval` or set window = "1m" or more
1 error in wharf.toml
"#,
    ),
    (
        "an invalid interval is not compared with the window",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy.analysis]
interval = "0s"
window = "1ms"
"#,
        r#"
wharf.toml:5:12: `interval` in [deploy.analysis] must be greater than 0
  = hint: write a duration such as "500ms" or "30s"
1 error in wharf.toml
"#,
    ),
    (
        "unknown analysis keys, and analysis and step keys written in [deploy]",
        r#"
name = "hello"
[processes.web]
command = "bin/web"
[deploy]
max_error_rate = 0.05
weight = 10
[deploy.analysis]
windw = "1m"
latency = "50ms"
"#,
        r#"
wharf.toml:5:1: unknown key `max_error_rate` in [deploy]
  = hint: `max_error_rate` belongs in [deploy.analysis]
wharf.toml:6:1: unknown key `weight` in [deploy]
  = hint: `weight` belongs to a step: steps = [{ weight = 10, pause = "30s" }, { weight = 50 }]
wharf.toml:8:1: unknown key `windw` in [deploy.analysis]
  = hint: did you mean `window`?
wharf.toml:9:1: unknown key `latency` in [deploy.analysis]
  = hint: valid keys here are `interval`, `window`, `min_requests`, `min_errors`, `max_error_rate`, `max_error_rate_increase`, `max_p99_ratio`, `p99_floor`, `failures_tolerated`
4 errors in wharf.toml
"#,
    ),
    (
        "a real app's keys: images, volumes, ports, hosts, aliases, asset_path",
        r#"
name = "shop"
runtime = "docker"
asset_path = "public/assets"
[processes.web]
image = "shop:1"
build = { dockerfile = "Dockerfile.web" }
volumes = ["./../secrets:/secrets", "store:relative"]
ports = ["5432"]
http = { host = "a.example", hosts = ["b.example"] }
[processes.worker]
image = "a b"
instances = 2
ports = ["5432"]
[accessories.db]
image = "postgres:16"
aliases = ["web", "db_main", "-bad"]
"#,
        r#"
wharf.toml:3:14: `asset_path` "public/assets" is not a usable directory
  = hint: write the absolute path in the image, e.g. asset_path = "/rails/public/assets"
wharf.toml:6:1: [processes.web] has both `image` and `build`
  = hint: keep image = "shop:1" to run that image, or `build` to build one from the app's directory
wharf.toml:7:12: volume "./../secrets:/secrets" in [processes.web] has source `./../secrets`: a relative source is a path inside the app's directory, without `..`
  = hint: write "NAME:/path/in/container" (a named volume), "/host/path:/path/in/container[:ro]" or "./path/in/app:/path/in/container[:ro]"
wharf.toml:7:37: volume "store:relative" in [processes.web] has target `relative`: it must be an absolute path
  = hint: write "NAME:/path/in/container" (a named volume), "/host/path:/path/in/container[:ro]" or "./path/in/app:/path/in/container[:ro]"
wharf.toml:8:10: [processes.web] has both `ports` and `http`
  = hint: the proxy reaches an http process itself; `ports` publishes a process without `http` (a database, an SMTP server)
wharf.toml:9:17: [processes.web.http] has both `host` and `hosts`
  = hint: keep `hosts` and put this host in it
wharf.toml:11:9: `image` in [processes.worker] must be an image reference, found "a b"
  = hint: write image = "registry.example.com/frontend:1.2", or leave it out to run the app's image
wharf.toml:13:10: [processes.worker] publishes `ports` with instances = 2
  = hint: a host port takes one instance: set instances = 1
wharf.toml:16:12: alias "web" in [accessories.db] is already the name of a process
  = hint: each name on the app's network reaches one thing; remove or rename it
wharf.toml:16:30: alias "-bad" in [accessories.db] is not a network name
  = hint: use letters, digits, `_`, `.` and `-` (at most 63), starting with a letter or digit
10 errors in wharf.toml
"#,
    ),
    (
        "process runtime: no images, no read-only links, assets inside the release",
        r#"
name = "shop"
asset_path = "/public/assets"
[processes.web]
command = "bin/web"
image = "shop:1"
entrypoint = "tini"
volumes = ["storage:storage:ro", "data:/abs"]
"#,
        r#"
wharf.toml:2:14: `asset_path` "/public/assets" is not a usable directory
  = hint: write a path inside the release directory, e.g. asset_path = "public/assets"
wharf.toml:5:1: `image` in [processes.web] needs runtime = "docker"
  = hint: set runtime = "docker" at the top of the file to run containers
wharf.toml:6:1: `entrypoint` in [processes.web] needs runtime = "docker"
  = hint: set runtime = "docker" at the top of the file to run containers
wharf.toml:7:12: volume "storage:storage:ro" in [processes.web] is read-only (`:ro`), which the process runtime cannot enforce on a linked directory; drop `:ro` or use runtime = "docker"
  = hint: write "NAME:path/in/the/release" (a named volume) or "/host/path:path/in/the/release"
wharf.toml:7:34: volume "data:/abs" in [processes.web] has target `/abs`: under the process runtime it is a path inside the release directory, such as `storage` or `public/uploads`
  = hint: write "NAME:path/in/the/release" (a named volume) or "/host/path:path/in/the/release"
5 errors in wharf.toml
"#,
    ),
    (
        "cron: bad schedule, bad time zone, unknown process, empty command, unknown key, all at once",
        r#"
name = "shop"
[processes.web]
command = "bin/web"
[processes.worker]
command = "bin/worker"

[cron.cleanup]
schedule = "61 * * * *"
time_zone = "Europe/Pari"
command = ""
process = "wrker"
timout = "1h"

[cron.report]
schedule = "0 3 * *"
command = "bin/report"
process = "db"
"#,
        r#"
wharf.toml:8:12: `schedule` in [cron.cleanup]: invalid cron schedule `61 * * * *`: the minute field `61` is invalid (number out of bounds)
  = hint: the minute field takes 0-59, lists (`,`), ranges (`-`) and steps (`*/n`)
wharf.toml:9:13: `time_zone` in [cron.cleanup]: unknown time zone `Europe/Pari`
  = hint: did you mean `Europe/Paris`?
wharf.toml:10:11: `command` in [cron.cleanup] must not be empty
  = hint: give the command to run, e.g. command = "bin/rails cleanup"
wharf.toml:11:11: `process` in [cron.cleanup] must name a process of this app, found "wrker"
  = hint: did you mean `worker`?
wharf.toml:12:1: unknown key `timout` in [cron.cleanup]
  = hint: did you mean `timeout`?
wharf.toml:15:12: `schedule` in [cron.report]: the cron schedule `0 3 * *` has 4 fields
  = hint: write five fields (minute hour day-of-month month day-of-week), e.g. `0 3 * * *` for 03:00 every day, six with seconds first, or `@daily`
wharf.toml:17:11: `process` in [cron.report] must name a process of this app, found "db"
  = hint: the processes of this app are `web`, `worker`
7 errors in wharf.toml
"#,
    ),
    (
        "cron shapes: missing keys, wrong types, bad names, nicknames, zones and timeouts",
        r#"
name = "shop"
[processes.web]
command = "bin/web"

[cron.Nightly]
schedule = "@dayly"
time_zone = "europe/paris"
timeout = "0s"
catch_up = "yes"

[cron.leap]
schedule = "0 0 30 2 *"
command = "bin/leap"
time_zone = "Mars/Olympus"

[cron.tick]
command = 5

[cron.broken]
"#,
        r#"
wharf.toml:5:1: missing required key `command` in [cron.Nightly]
  = hint: add command = "...": what to run, e.g. command = "bin/rails cleanup"
wharf.toml:5:7: cron entry name must be lowercase letters, digits and `-`, not starting with `-`; found "Nightly"
  = hint: try "nightly"
wharf.toml:6:12: `schedule` in [cron.Nightly]: `@dayly` is not a schedule wharf knows
  = hint: use `@hourly`, `@daily`, `@weekly`, `@monthly` or `@yearly`, or five fields such as `0 3 * * *`
wharf.toml:7:13: `time_zone` in [cron.Nightly]: unknown time zone `europe/paris`
  = hint: did you mean `Europe/Paris`?
wharf.toml:8:11: `timeout` in [cron.Nightly] must be greater than 0
  = hint: write a duration such as "500ms" or "30s"
wharf.toml:9:12: `catch_up` in [cron.Nightly] must be true or false, found a string
wharf.toml:12:12: `schedule` in [cron.leap]: the cron schedule `0 0 30 2 *` never fires: no date matches it
  = hint: check the day-of-month and month fields (e.g. 30 February does not exist)
wharf.toml:14:13: `time_zone` in [cron.leap]: unknown time zone `Mars/Olympus`
  = hint: use an IANA time zone name such as `Europe/Berlin`, `America/New_York` or `UTC`
wharf.toml:16:1: missing required key `schedule` in [cron.tick]
  = hint: add schedule = "0 3 * * *" (five cron fields) or a nickname such as "@daily"
wharf.toml:17:11: `command` in [cron.tick] must be a string, found an integer
wharf.toml:19:1: missing required key `schedule` in [cron.broken]
  = hint: add schedule = "0 3 * * *" (five cron fields) or a nickname such as "@daily"
wharf.toml:19:1: missing required key `command` in [cron.broken]
  = hint: add command = "...": what to run, e.g. command = "bin/rails cleanup"
12 errors in wharf.toml
"#,
    ),
    (
        "cron written as something other than tables",
        r#"
name = "shop"
cron = { nightly = "0 3 * * *" }
crons = 1
[processes.web]
command = "bin/web"
"#,
        r#"
wharf.toml:2:20: cron entry `nightly` must be a table, found a string
  = hint: write [cron.nightly] followed by schedule = "0 3 * * *" and command = "..."
wharf.toml:3:1: unknown top-level key `crons`
  = hint: did you mean `cron`?
2 errors in wharf.toml
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
