//! `hello`: the example app of wharf, a tiny HTTP server, plus two helpers
//! for running it with accessories.
//!
//! `hello` (no arguments) is the web app. It listens on `$HELLO_HOST:$PORT`
//! (default `127.0.0.1:3000`). `GET /up` is the health check, `GET /` a small
//! HTML page, `GET /ws` a WebSocket that greets with
//! `hello release=<R> instance=<I>` and then echoes every text and binary
//! message, `GET /has-env/{NAME}` answers `yes` (200) or `no` (404)
//! depending on whether env var `NAME` is set and non-empty (the value is
//! never shown), and every other path answers one plain text line
//! `hello release=<R> instance=<I> path=<P>`. When `HELLO_KV_URL` is set
//! (e.g. `http://kv:7000`), `GET` and `PUT /kv/{key}` are forwarded to
//! `$HELLO_KV_URL/kv/{key}` and the store's status and body returned (502
//! when the store cannot be reached); with `HELLO_UP_NEEDS_KV=1` as well,
//! `/up` passes only while the store's own `/up` does, as a real app's
//! health check fails while its database is down. With `HELLO_KV_DIR`
//! instead, the app keeps `/kv/{key}` itself, one file per key in that
//! directory (an app writing to its own volume). With `HELLO_STATIC_DIR`,
//! `GET /static/{file}` sends that directory's files, and the page at `/`
//! links every `.css` file found there at start (fingerprinted assets). Every response has an
//! `X-Hello-Release` header. Bad releases are simulated from the
//! environment: `HELLO_FAILURE_RATE`, `HELLO_DELAY`, `HELLO_UP_STATUS`,
//! `HELLO_STARTUP_DELAY` (see [`Config`]); the first two apply to every
//! request but `/up`.
//!
//! `hello kv DIR` is a key-value store keeping one file per key in `DIR`
//! (see [`kv`]), on `$HELLO_HOST:$PORT` with port 7000 by default.
//!
//! `hello probe URL` GETs an `http://` URL within 2 s and exits 0 on a 2xx
//! answer, 1 otherwise: a health check for images without curl.
//!
//! Bad settings or arguments exit with 2 (`probe`: 1, see [`probe_main`]).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

mod client;
mod failure;
mod kv;

use failure::FailureRate;

const USAGE: &str = "usage: hello            the web app (settings from HELLO_* env vars)
       hello kv DIR     a key-value store keeping its values in DIR
       hello probe URL  GET an http:// URL; exit 0 on 2xx, 1 otherwise";

/// How long a forwarded `/kv/*` request may take in all.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `hello probe` waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// `HELLO_KV_URL`: where `/kv/*` is forwarded, without a trailing `/`.
    kv_url: Option<String>,
    /// `HELLO_UP_NEEDS_KV=1`: `/up` also checks `$HELLO_KV_URL/up`.
    up_needs_kv: bool,
    /// `HELLO_KV_DIR`: serve `/kv/*` from files in this directory.
    kv_dir: Option<PathBuf>,
    /// `HELLO_STATIC_DIR`: serve `/static/*` from this directory.
    static_dir: Option<PathBuf>,
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

/// `HELLO_HOST` and `PORT`, the same rules for every mode that listens.
fn listen_addr(default_port: u16) -> Result<SocketAddr, String> {
    let host = match var("HELLO_HOST") {
        None => std::net::IpAddr::from([127, 0, 0, 1]),
        Some(v) => v
            .parse()
            .map_err(|_| format!("HELLO_HOST={v:?} is not an IP address"))?,
    };
    let port = match var("PORT") {
        None => default_port,
        Some(v) => v
            .parse()
            .map_err(|_| format!("PORT={v:?} is not a port number (1-65535)"))?,
    };
    Ok(SocketAddr::new(host, port))
}

/// `HELLO_KV_URL`, checked: an `http://` URL, with no query to append to.
fn kv_url_var() -> Result<Option<String>, String> {
    let Some(v) = var("HELLO_KV_URL") else {
        return Ok(None);
    };
    let uri = client::parse_http_url(&v).map_err(|err| format!("HELLO_KV_URL: {err}"))?;
    if uri.query().is_some() {
        return Err(format!("HELLO_KV_URL={v:?} must not have a query"));
    }
    Ok(Some(v.trim_end_matches('/').to_owned()))
}

impl Config {
    fn from_env() -> Result<Self, String> {
        let addr = listen_addr(3000)?;
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
            host: addr.ip(),
            port: addr.port(),
            release: var("WHARF_RELEASE").unwrap_or_else(|| "?".to_owned()),
            instance: var("WHARF_INSTANCE").unwrap_or_else(|| "?".to_owned()),
            message: var("HELLO_MESSAGE"),
            failure_rate,
            delay: duration_var("HELLO_DELAY")?,
            up_status,
            startup_delay: duration_var("HELLO_STARTUP_DELAY")?,
            up_needs_kv: match var("HELLO_UP_NEEDS_KV").as_deref() {
                None | Some("0" | "false") => false,
                Some("1" | "true") => true,
                Some(v) => return Err(format!("HELLO_UP_NEEDS_KV={v:?} must be 1 or 0")),
            },
            kv_url: kv_url_var()?,
            kv_dir: var("HELLO_KV_DIR").map(PathBuf::from),
            static_dir: var("HELLO_STATIC_DIR").map(PathBuf::from),
        })
        .and_then(|c| {
            if c.kv_url.is_some() && c.kv_dir.is_some() {
                return Err("set HELLO_KV_URL or HELLO_KV_DIR, not both".to_owned());
            }
            Ok(c)
        })
    }
}

#[derive(Debug)]
struct App {
    config: Config,
    /// Non-`/up` requests seen so far, for the failure spread.
    requests: AtomicU64,
    /// For forwarding to `HELLO_KV_URL`.
    client: client::HttpClient,
    /// `HELLO_KV_DIR`'s store.
    store: Option<kv::Store>,
    /// The `.css` files in `HELLO_STATIC_DIR` at start, sorted.
    stylesheets: Vec<String>,
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

fn page(config: &Config, stylesheets: &[String]) -> String {
    let links: String = stylesheets
        .iter()
        .map(|name| {
            format!(
                "<link rel=\"stylesheet\" href=\"/static/{}\">",
                escape_html(name)
            )
        })
        .collect();
    let release = escape_html(&config.release);
    let instance = escape_html(&config.instance);
    let message = config
        .message
        .as_deref()
        .map(|m| format!("    <p class=\"message\">{}</p>\n", escape_html(m)))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html>\n  <head><meta charset=\"utf-8\"><title>hello</title>{links}</head>\n  <body>\n    \
         <h1>hello from release {release}</h1>\n{message}    <p>release: <code>{release}</code></p>\n    \
         <p>instance: <code>{instance}</code></p>\n  </body>\n</html>\n"
    )
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let config = &app.config;
    let path = req.uri().path().to_owned();
    let mut response = if path == "/up" {
        match kv_down(&app).await {
            Some(why) => (StatusCode::INTERNAL_SERVER_ERROR, why).into_response(),
            None => (
                config.up_status,
                if config.up_status.is_success() {
                    "ok"
                } else {
                    "not ok"
                },
            )
                .into_response(),
        }
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
        } else {
            respond(&app, req).await
        }
    };
    if let Ok(value) = HeaderValue::from_str(&config.release) {
        response.headers_mut().insert("x-hello-release", value);
    }
    response
}

/// With `HELLO_UP_NEEDS_KV`: why the kv store does not pass its own `/up`.
async fn kv_down(app: &App) -> Option<String> {
    let base = app
        .config
        .kv_url
        .as_ref()
        .filter(|_| app.config.up_needs_kv)?;
    let uri = format!("{base}/up").parse::<Uri>().ok()?;
    match client::send(
        &app.client,
        Method::GET,
        uri,
        axum::body::Bytes::new(),
        PROBE_TIMEOUT,
        1024,
    )
    .await
    {
        Ok(reply) if reply.status.is_success() => None,
        Ok(reply) => Some(format!(
            "kv store at {base} is not up: status {}\n",
            reply.status
        )),
        Err(reason) => Some(format!("kv store at {base} unreachable: {reason}\n")),
    }
}

/// `GET /ws`: a WebSocket echo, greeting first with the release and
/// instance (so a client sees which release it reached).
async fn websocket(
    State(app): State<Arc<App>>,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    use axum::extract::ws::Message;
    let greeting = format!(
        "hello release={} instance={}",
        app.config.release, app.config.instance
    );
    let mut response = ws
        .max_message_size(16 << 20)
        .on_upgrade(move |mut socket| async move {
            if socket.send(Message::Text(greeting.into())).await.is_err() {
                return;
            }
            while let Some(Ok(message)) = socket.recv().await {
                match message {
                    Message::Text(_) | Message::Binary(_) => {
                        if socket.send(message).await.is_err() {
                            return;
                        }
                    }
                    Message::Close(_) => return,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
        });
    if let Ok(value) = HeaderValue::from_str(&app.config.release) {
        response.headers_mut().insert("x-hello-release", value);
    }
    response
}

/// Answers a non-`/up` request that is not failing on purpose.
async fn respond(app: &App, req: Request) -> Response {
    let config = &app.config;
    let path = req.uri().path();
    let method = req.method();
    if path == "/" && method == Method::GET {
        return (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            page(config, &app.stylesheets),
        )
            .into_response();
    }
    if method == Method::GET
        && let (Some(dir), Some(name)) = (&config.static_dir, path.strip_prefix("/static/"))
    {
        return static_file(dir, name).await;
    }
    if let (Some(store), Some(key)) = (&app.store, path.strip_prefix("/kv/")) {
        let key = key.to_owned();
        return kv::serve_key(store, &key, req).await;
    }
    if method == Method::GET
        && let Some(name) = path.strip_prefix("/has-env/")
    {
        return has_env(name);
    }
    if (method == Method::GET || method == Method::PUT)
        && let (Some(base), Some(key)) = (&config.kv_url, path.strip_prefix("/kv/"))
    {
        let target = format!("{base}/kv/{key}");
        return forward(app, base, target, req).await;
    }
    format!(
        "hello release={} instance={} path={path}\n",
        config.release, config.instance
    )
    .into_response()
}

/// `GET /static/{name}`: a file of `HELLO_STATIC_DIR` (names as kv keys:
/// one plain file name, never a path).
async fn static_file(dir: &std::path::Path, name: &str) -> Response {
    if !kv::valid_key(name) {
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    }
    let kind = if name.ends_with(".css") {
        "text/css"
    } else if name.ends_with(".js") {
        "text/javascript"
    } else {
        "application/octet-stream"
    };
    match tokio::fs::read(dir.join(name)).await {
        Ok(body) => ([(header::CONTENT_TYPE, kind)], body).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}

/// The `.css` files of `dir`, sorted; none when it cannot be read.
async fn stylesheets(dir: Option<&std::path::Path>) -> Vec<String> {
    let Some(dir) = dir else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".css") && kv::valid_key(&name) {
                names.push(name);
            }
        }
    }
    names.sort();
    names
}

/// `GET /has-env/{NAME}`: whether a variable reached the app, without
/// showing its value (it may be a secret).
fn has_env(name: &str) -> Response {
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return (
            StatusCode::BAD_REQUEST,
            "bad variable name: use [A-Za-z_][A-Za-z0-9_]*\n",
        )
            .into_response();
    }
    if std::env::var_os(name).is_some_and(|v| !v.is_empty()) {
        (StatusCode::OK, "yes").into_response()
    } else {
        (StatusCode::NOT_FOUND, "no").into_response()
    }
}

/// Sends a `/kv/*` request on to the store at `base` (`target` is the full
/// URL) and returns the store's status and body. The key is passed as it
/// came (not decoded): the store is the one that judges it.
async fn forward(app: &App, base: &str, target: String, req: Request) -> Response {
    let Ok(uri) = target.parse::<Uri>() else {
        return (StatusCode::BAD_REQUEST, "bad key\n").into_response();
    };
    let method = req.method().clone();
    let body = match axum::body::to_bytes(req.into_body(), kv::MAX_VALUE).await {
        Ok(body) => body,
        Err(err) if kv::too_large(&err) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("values are at most {} bytes\n", kv::MAX_VALUE),
            )
                .into_response();
        }
        Err(_) => return (StatusCode::BAD_REQUEST, "could not read the body\n").into_response(),
    };
    match client::send(
        &app.client,
        method,
        uri,
        body,
        FORWARD_TIMEOUT,
        kv::MAX_VALUE,
    )
    .await
    {
        Ok(reply) => {
            let mut response = (reply.status, reply.body).into_response();
            if let Some(content_type) = reply.content_type {
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, content_type);
            }
            response
        }
        Err(reason) => (
            StatusCode::BAD_GATEWAY,
            format!("kv store at {base} unreachable: {reason}\n"),
        )
            .into_response(),
    }
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
    let store = match &config.kv_dir {
        Some(dir) => Some(kv::Store::open(dir.clone()).await?),
        None => None,
    };
    let app = Arc::new(App {
        stylesheets: stylesheets(config.static_dir.as_deref()).await,
        config,
        requests: AtomicU64::new(0),
        client: client::new(),
        store,
    });
    let router = Router::new()
        .route("/ws", axum::routing::get(websocket))
        .fallback(handle)
        .with_state(app.clone());
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
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match args.as_slice() {
        [] => web_main(),
        [command, rest @ ..] => match command.to_str() {
            Some("kv") => kv_main(rest),
            Some("probe") => probe_main(rest),
            Some("help" | "-h" | "--help") => {
                println!("{USAGE}");
                ExitCode::SUCCESS
            }
            _ => {
                eprintln!("hello: unknown command {command:?}\n{USAGE}");
                ExitCode::from(2)
            }
        },
    }
}

/// Builds the async runtime, printing why it could not be built.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(err) => {
            eprintln!("hello: could not start the async runtime: {err}");
            None
        }
    }
}

fn web_main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("hello: {err}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hello: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `hello kv DIR`.
fn kv_main(args: &[OsString]) -> ExitCode {
    let [dir] = args else {
        eprintln!("hello kv: expected one argument, the data directory\n{USAGE}");
        return ExitCode::from(2);
    };
    let addr = match listen_addr(7000) {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("hello kv: {err}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(kv::run(addr, PathBuf::from(dir))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hello kv: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `hello probe URL`. Every failure, bad usage included, exits with 1:
/// Docker health checks treat 1 as unhealthy and reserve 2.
fn probe_main(args: &[OsString]) -> ExitCode {
    let [url] = args else {
        eprintln!("hello probe: expected one argument, the URL\n{USAGE}");
        return ExitCode::FAILURE;
    };
    let Some(url) = url.to_str() else {
        eprintln!("hello probe: the URL {url:?} is not UTF-8");
        return ExitCode::FAILURE;
    };
    // One request: a single thread is plenty.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("hello probe: could not start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(client::probe(url, PROBE_TIMEOUT)) {
        Ok(status) if status.is_success() => {
            println!("hello probe: {url} answered {status}");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!("hello probe: {url} answered {status}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("hello probe: {url}: {err}");
            ExitCode::FAILURE
        }
    }
}
