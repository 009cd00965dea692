//! `hello`: the example app of wharf, a tiny HTTP server.
//!
//! Listens on `$HELLO_HOST:$PORT` (default `127.0.0.1:3000`). `GET /up` is the health
//! check, `GET /` a small HTML page, and every other path answers one plain
//! text line `hello release=<R> instance=<I> path=<P>`. Every response has
//! an `X-Hello-Release` header. Bad releases are simulated from the
//! environment: `HELLO_FAILURE_RATE`, `HELLO_DELAY`, `HELLO_UP_STATUS`,
//! `HELLO_STARTUP_DELAY` (see [`Config`]).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

mod failure;

use failure::FailureRate;

/// Settings read from the environment at start.
#[derive(Debug, Clone)]
struct Config {
    /// `HELLO_HOST`: address to bind (default 127.0.0.1; `0.0.0.0` in a container).
    host: std::net::IpAddr,
    port: u16,
    release: String,
    instance: String,
    message: Option<String>,
    /// `HELLO_FAILURE_RATE`: fraction (0.0–1.0) of non-`/up` requests that answer 500.
    failure_rate: FailureRate,
    /// `HELLO_DELAY`: added to every non-`/up` request, e.g. `50ms`.
    delay: Duration,
    /// `HELLO_UP_STATUS`: status of `/up` (default 200).
    up_status: StatusCode,
    /// `HELLO_STARTUP_DELAY`: sleep before binding.
    startup_delay: Duration,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn duration_var(name: &str) -> Result<Duration, String> {
    match var(name) {
        None => Ok(Duration::ZERO),
        Some(v) => humantime::parse_duration(&v).map_err(|err| {
            format!("{name}={v:?} is not a duration ({err}); use e.g. \"50ms\" or \"2s\"")
        }),
    }
}

impl Config {
    fn from_env() -> Result<Self, String> {
        let host = match var("HELLO_HOST") {
            None => std::net::IpAddr::from([127, 0, 0, 1]),
            Some(v) => v
                .parse()
                .map_err(|_| format!("HELLO_HOST={v:?} is not an IP address"))?,
        };
        let port = match var("PORT") {
            None => 3000,
            Some(v) => v
                .parse()
                .map_err(|_| format!("PORT={v:?} is not a port number (1-65535)"))?,
        };
        let failure_rate = match var("HELLO_FAILURE_RATE") {
            None => FailureRate::default(),
            Some(v) => {
                FailureRate::parse(&v).map_err(|err| format!("HELLO_FAILURE_RATE={v:?}: {err}"))?
            }
        };
        let up_status = match var("HELLO_UP_STATUS") {
            None => StatusCode::OK,
            Some(v) => v
                .parse::<u16>()
                .ok()
                .and_then(|code| StatusCode::from_u16(code).ok())
                .ok_or_else(|| {
                    format!("HELLO_UP_STATUS={v:?} is not an HTTP status code (100-999)")
                })?,
        };
        Ok(Config {
            host,
            port,
            release: var("WHARF_RELEASE").unwrap_or_else(|| "?".to_owned()),
            instance: var("WHARF_INSTANCE").unwrap_or_else(|| "?".to_owned()),
            message: var("HELLO_MESSAGE"),
            failure_rate,
            delay: duration_var("HELLO_DELAY")?,
            up_status,
            startup_delay: duration_var("HELLO_STARTUP_DELAY")?,
        })
    }
}

#[derive(Debug)]
struct App {
    config: Config,
    /// Non-`/up` requests seen so far, for the failure spread.
    requests: AtomicU64,
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(config: &Config) -> String {
    let release = escape_html(&config.release);
    let instance = escape_html(&config.instance);
    let message = config
        .message
        .as_deref()
        .map(|m| format!("    <p class=\"message\">{}</p>\n", escape_html(m)))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html>\n  <head><meta charset=\"utf-8\"><title>hello</title></head>\n  <body>\n    \
         <h1>hello from release {release}</h1>\n{message}    <p>release: <code>{release}</code></p>\n    \
         <p>instance: <code>{instance}</code></p>\n  </body>\n</html>\n"
    )
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let config = &app.config;
    let path = req.uri().path().to_owned();
    let mut response = if path == "/up" {
        (
            config.up_status,
            if config.up_status.is_success() {
                "ok"
            } else {
                "not ok"
            },
        )
            .into_response()
    } else {
        let n = app.requests.fetch_add(1, Ordering::Relaxed);
        if !config.delay.is_zero() {
            tokio::time::sleep(config.delay).await;
        }
        if config.failure_rate.fails(n) {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "failing on purpose (HELLO_FAILURE_RATE) release={} instance={}\n",
                    config.release, config.instance
                ),
            )
                .into_response()
        } else if path == "/" && req.method() == Method::GET {
            (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                page(config),
            )
                .into_response()
        } else {
            format!(
                "hello release={} instance={} path={path}\n",
                config.release, config.instance
            )
            .into_response()
        }
    };
    if let Ok(value) = HeaderValue::from_str(&config.release) {
        response.headers_mut().insert("x-hello-release", value);
    }
    response
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            eprintln!("hello: could not listen for SIGTERM; only Ctrl-C stops it");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    if !config.startup_delay.is_zero() {
        tokio::time::sleep(config.startup_delay).await;
    }
    let addr = SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|err| format!("could not listen on {addr}: {err}"))?;
    println!(
        "hello: listening on http://{addr} (release {}, instance {}, pid {})",
        config.release,
        config.instance,
        std::process::id()
    );
    let app = Arc::new(App {
        config,
        requests: AtomicU64::new(0),
    });
    let router = Router::new().fallback(handle).with_state(app.clone());
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|err| format!("server failed: {err}"))?;
    println!(
        "hello: stopped gracefully after {} requests (release {}, instance {})",
        app.requests.load(Ordering::Relaxed),
        app.config.release,
        app.config.instance
    );
    Ok(())
}

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("hello: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("hello: could not start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hello: {err}");
            ExitCode::FAILURE
        }
    }
}
