//! Test harness: origins, a proxy on an ephemeral port, a client, and
//! `assert_eventually!`. Everything binds 127.0.0.1:0.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use wharf_proxy::{Backend, BackendSet, Proxy, ProxyConfig, ReleaseGroup, Route, RoutingTable};

/// Retries `$cond` every 10 ms until it holds or `$timeout` passes.
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr, timeout = $timeout:expr, $($msg:tt)+) => {{
        let deadline = std::time::Instant::now() + $timeout;
        loop {
            if $cond {
                break;
            }
            if std::time::Instant::now() > deadline {
                panic!("condition not met in {:?}: {}", $timeout, format!($($msg)+));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }};
    ($cond:expr, $($msg:tt)+) => {
        $crate::assert_eventually!($cond, timeout = std::time::Duration::from_secs(5), $($msg)+)
    };
}

/// A tiny HTTP server. `GET /any` answers 200 with body `origin=NAME` and
/// one `name: value` line per request header; `?sleep=MS` delays the head,
/// `?status=N` sets the status, `?hop=1` adds hop-by-hop response headers.
pub struct OriginBuilder {
    name: String,
}

pub struct Origin {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

pub fn origin(name: &str) -> OriginBuilder {
    OriginBuilder {
        name: name.to_owned(),
    }
}

impl OriginBuilder {
    pub async fn run(self) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let name: Arc<str> = self.name.into();
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = tokio::select! {
                    _ = &mut stopped => return,
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                };
                let name = name.clone();
                let hits = h.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        answer(name.clone(), hits.clone(), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Origin {
            addr,
            hits,
            _stop: stop,
        }
    }
}

impl Origin {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn query<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

async fn answer(
    name: Arc<str>,
    hits: Arc<AtomicUsize>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    hits.fetch_add(1, Ordering::SeqCst);
    if let Some(ms) = query(&req, "sleep").and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status: u16 = query(&req, "status")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let hop = query(&req, "hop").is_some();
    let mut body = format!("origin={name}\npath={}\n", req.uri().path());
    for (k, v) in req.headers() {
        body.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
    }
    let (_, b) = req.into_parts();
    let got = b.collect().await.map(|c| c.to_bytes().len()).unwrap_or(0);
    body.push_str(&format!("body-bytes={got}\n"));
    let mut resp = Response::builder()
        .status(status)
        .header("x-origin", &*name);
    if hop {
        resp = resp
            .header("connection", "x-drop-me")
            .header("x-drop-me", "1")
            .header("keep-alive", "timeout=5")
            .header("upgrade", "h2c")
            .header("x-kept", "1");
    }
    Ok(resp.body(Full::new(Bytes::from(body))).unwrap())
}

/// A proxy serving on an ephemeral port.
pub struct TestProxy {
    pub proxy: Arc<Proxy>,
    pub addr: SocketAddr,
    pub registry: Registry,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub fn test_config() -> ProxyConfig {
    ProxyConfig {
        upstream_connect_timeout: Duration::from_secs(1),
        upstream_timeout: Duration::from_secs(5),
        access_log: true,
        ..ProxyConfig::default()
    }
}

impl TestProxy {
    pub async fn start(config: ProxyConfig) -> TestProxy {
        let mut registry = Registry::default();
        let proxy = Proxy::new(config, &mut registry);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.clone().serve(listener, async move {
            let _ = stopped.await;
        }));
        TestProxy {
            proxy,
            addr,
            registry,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn backend(&self, id: &str, addr: SocketAddr, app: &str, release: u64) -> Arc<Backend> {
        self.proxy.backend(id, addr, app, release)
    }

    /// Routes everything (any host, `/`) of app `app` to `backends`.
    pub fn route_all(&self, app: &str, release: u64, backends: Vec<Arc<Backend>>) {
        self.proxy.swap(RoutingTable::new(vec![route(
            app,
            None,
            "/",
            BackendSet::single(release, backends),
        )]));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn metrics(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).unwrap();
        out
    }

    /// Stops accepting and waits for `serve` to return.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }
}

pub fn route(app: &str, host: Option<&str>, prefix: &str, backends: BackendSet) -> Route {
    Route {
        app: app.to_owned(),
        process: "web".to_owned(),
        host: host.map(str::to_owned),
        path_prefix: prefix.to_owned(),
        backends,
        unavailable: None,
        options: Default::default(),
    }
}

pub fn groups(gs: Vec<(u64, u32, Vec<Arc<Backend>>)>) -> BackendSet {
    BackendSet {
        groups: gs
            .into_iter()
            .map(|(release, weight, backends)| ReleaseGroup {
                release,
                weight,
                backends,
            })
            .collect(),
    }
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build_http()
}

pub struct Got {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Got {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    /// The origin that answered (`origin=NAME` line), if any.
    pub fn origin(&self) -> &str {
        self.body
            .lines()
            .find_map(|l| l.strip_prefix("origin="))
            .unwrap_or("")
    }
    /// A request header as the origin saw it.
    pub fn seen(&self, name: &str) -> Option<&str> {
        self.body
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
    }
}

pub async fn send(
    c: &HttpClient,
    req: Request<Full<Bytes>>,
) -> Result<Got, hyper_util::client::legacy::Error> {
    let resp = c.request(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok(Got {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

pub async fn get(c: &HttpClient, url: &str) -> Got {
    send(c, Request::get(url).body(Full::default()).unwrap())
        .await
        .unwrap()
}

pub async fn get_host(c: &HttpClient, url: &str, host: &str) -> Got {
    send(
        c,
        Request::get(url)
            .header("host", host)
            .body(Full::default())
            .unwrap(),
    )
    .await
    .unwrap()
}

/// Sends raw bytes on a new connection and reads until the server closes
/// it (or `wait` passes); returns what was read.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A port on which nothing listens (bound then released).
pub async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}
