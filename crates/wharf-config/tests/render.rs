//! `wharf config show`: snapshots of the rendered TOML, and the round trip.

use std::path::Path;

mod common;

use common::{MINIMAL, parse};

const RICH: &str = r#"
name = "shop"
build = "cargo build --release && cp target/release/shop bin/"
release_command = "bin/shop migrate"

[env]
GREETING = "say \"hi\"\n"
PORT_OFFSET = 10

[processes.worker]
command = "bin/shop work"
instances = 3
stop_timeout = "1m 30s"
env = { QUEUE = "default" }

[processes.web]
command = "bin/shop serve --port $PORT"
instances = 2
http = { host = "shop.localhost", path = "/" }
health = { path = "/healthz", interval = "500ms", threshold = 3 }

[processes.admin]
command = "bin/shop admin"
[processes.admin.http]
path = "/admin/"

[deploy]
health_timeout = "2m"
drain_timeout = "0s"
retain = 10
strategy = "canary"
notify = "https://hooks.example.com/wharf?app=shop"

[[deploy.steps]]
weight = 5
pause = "1m 30s"

[[deploy.steps]]
weight = 25

[[deploy.steps]]
weight = 75
pause = "500ms"

[deploy.analysis]
window = "1m"
min_requests = 1_000
max_error_rate = 5e-2
max_error_rate_increase = 0.1
max_p99_ratio = 3
"#;

/// Blue-green with a bake and a partial analysis, inline.
const BAKE: &str = r#"
name = "hello"
[processes.web]
command = "bin/hello"
[deploy]
strategy = "blue-green"
bake = "2m"
analysis = { interval = "250ms", p99_floor = "0s", failures_tolerated = 0 }
"#;

/// A containerized app: Dockerfile build, secrets, limits, accessories.
const DOCKER: &str = r#"
name = "shop"
runtime = "docker"
release_command = "bin/rails db:migrate"

[build]
command = "sh prebuild.sh"
dockerfile = "docker/Dockerfile.prod"
target = "runtime"
args = { RUBY_VERSION = "3.3" }

[env]
RAILS_ENV = "production"

[secrets]
RAILS_MASTER_KEY = { file = "/etc/shop/master.key" }
DATABASE_PASSWORD = { env = "SHOP_DB_PASSWORD" }

[processes.web]
port = 3000
instances = 2
memory = "512m"
cpus = 1.5
http = { host = "shop.example.com" }

[processes.jobs]
command = "bin/jobs --queue 'default low'"
restart = "on-failure"
memory = 268435456

[accessories.db]
image = "postgres:16"
env = { POSTGRES_DB = "shop" }
secrets = { POSTGRES_PASSWORD = { env = "SHOP_DB_PASSWORD" } }
ports = ["5432", "0.0.0.0:15432:5432"]
volumes = ["db-data:/var/lib/postgresql/data", "/srv/shop/conf:/etc/postgresql/conf.d:ro"]
memory = "1GiB"
health = { command = "pg_isready -U postgres", retries = 10 }

[accessories.cache]
image = "redis:7"
command = "redis-server --appendonly yes"

[accessories.search]
build = { dockerfile = "docker/search.Dockerfile", target = "search", args = { VERSION = "8" } }
volumes = ["search-data:/data"]
"#;

/// A prebuilt image: no Dockerfile settings.
const PREBUILT: &str = r#"
name = "shop"
runtime = "docker"
image = "registry.example.com/shop:1.2"
[processes.web]
command = "serve"
"#;

/// A real app as it is: env files, volumes, several hosts, a TCP port, a
/// frontend with its own image, release tasks, asset bridging, aliases.
const REAL: &str = r#"
name = "shop"
runtime = "docker"
image = "registry.example.com/shop:1.2"
env_file = [".env", ".env.production"]
release_command = ["bin/rails db:migrate", "bin/rails db:seed"]
asset_path = "/rails/public/assets"

[secrets]
env_file = ".env.secrets"

[processes.web]
env_file = ".env.web"
volumes = ["storage:/rails/storage", "./config/extra.yml:/rails/config/extra.yml:ro"]
http = { hosts = ["shop.example.com", "www.shop.example.com"], tls = true }

[processes.frontend]
build = { dockerfile = "frontend/Dockerfile", context = "frontend" }
entrypoint = "node"
command = "server.js"
http = { host = "shop.example.com", path = "/app" }

[processes.smtp]
image = "axllent/mailpit:v1.20"
entrypoint = ""
ports = ["127.0.0.1:1025:1025"]

[accessories.db]
image = "postgres:16"
aliases = ["shop_db", "shop-db"]
volumes = ["db-data:/var/lib/postgresql/data"]
"#;

/// Cron entries: defaults (the first process in the file, UTC, catch_up,
/// 1h), and every key written; rendered in name order.
const CRON: &str = r#"
name = "shop"
[processes.worker]
command = "bin/worker"
[processes.web]
command = "bin/web"
http = {}

[cron.vacuum]
schedule = "@daily"
command = "bin/vacuum"

[cron.report]
schedule = "0 7 * * MON-FRI"
time_zone = "Europe/Paris"
command = "bin/report --email 'ops team'"
process = "web"
catch_up = false
timeout = "15m"

[cron.tick]
schedule = "*/30 * * * * *"
command = "bin/tick"
"#;

fn reference() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("wharf.reference.toml");
    std::fs::read_to_string(path).expect("reading wharf.reference.toml")
}

#[test]
fn show_minimal() {
    insta::assert_snapshot!(parse(MINIMAL).to_toml());
}

#[test]
fn show_rich() {
    insta::assert_snapshot!(parse(RICH).to_toml());
}

#[test]
fn show_blue_green_with_bake() {
    insta::assert_snapshot!(parse(BAKE).to_toml());
}

#[test]
fn show_docker() {
    insta::assert_snapshot!(parse(DOCKER).to_toml());
}

#[test]
fn show_prebuilt_image() {
    insta::assert_snapshot!(parse(PREBUILT).to_toml());
}

#[test]
fn show_real_app() {
    insta::assert_snapshot!(parse(REAL).to_toml());
}

#[test]
fn show_cron() {
    insta::assert_snapshot!(parse(CRON).to_toml());
}

#[test]
fn rendered_toml_parses_back_to_the_same_config() {
    for source in [
        MINIMAL,
        RICH,
        BAKE,
        DOCKER,
        PREBUILT,
        REAL,
        CRON,
        &reference(),
    ] {
        let config = parse(source);
        let rendered = config.to_toml();
        assert_eq!(parse(&rendered), config, "rendered:\n{rendered}");
        // Rendering is a fixed point: showing the shown config changes nothing.
        assert_eq!(parse(&rendered).to_toml(), rendered);
    }
}

/// The store keeps each release's config as JSON; a rollback reads it back.
#[test]
fn stored_json_reads_back_to_the_same_config() {
    for source in [
        MINIMAL,
        RICH,
        BAKE,
        DOCKER,
        PREBUILT,
        REAL,
        CRON,
        &reference(),
    ] {
        let config = parse(source);
        let json = serde_json::to_string(&config).unwrap();
        let back: wharf_config::AppConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config, "{json}");
    }
}

#[test]
fn rendered_env_overrides_round_trip() {
    let overrides = [(
        "WEIRD".to_string(),
        "tab\there 'quote' \\ \u{1}".to_string(),
    )]
    .into_iter()
    .collect();
    let config = parse(RICH).with_env_overrides(&overrides).unwrap();
    assert_eq!(parse(&config.to_toml()), config);
}
