//! Posting commit statuses to a forge: the I/O half of
//! [`wharf_forge::status_request`], which builds the requests.
//!
//! [`post`] (or [`Poster::post`]) sends a [`StatusRequest`] over http:// or
//! https:// (rustls with ring, trusting the system's CA certificates),
//! its body as JSON, with its headers. It tries again after the
//! [`wharf_forge::backoff`] delays, up to [`STATUS_ATTEMPTS`] tries, while
//! [`wharf_forge::retryable`] says the answer may change (no answer, 408,
//! 429, 5xx); each try gets [`ATTEMPT_TIMEOUT`], from connecting to the end
//! of the answer. A 2xx answer is success; any other answer that will not
//! change (401, 404, 422…) ends the posting at once.
//!
//! A status that could not be posted never fails a pipeline: [`PostError`]
//! says what was posted where, what went wrong last and after how many
//! tries, to be shown with the pipeline.
//!
//! The forge token travels in a header (`Authorization` or
//! `PRIVATE-TOKEN`). No header appears in a message or log line here, the
//! forge's answer is shown with the token blanked out, and URLs are shown
//! without a `user:password@`.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use thiserror::Error;
use wharf_forge::{STATUS_ATTEMPTS, StatusRequest, backoff, retryable};

/// How long one try may take, from connecting to the end of the answer.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a forge's answer is read.
const ANSWER_LIMIT: usize = 64 * 1024;
/// How much of a forge's answer goes in a message.
const EXCERPT_CHARS: usize = 200;
/// Headers whose values are secrets.
const SECRET_HEADERS: [&str; 2] = ["authorization", "private-token"];

/// A status the forge took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    /// The forge's answer, a 2xx.
    pub status: u16,
    /// How many tries it took, from 1.
    pub attempts: u32,
}

/// Why a commit status was not posted. The pipeline goes on regardless;
/// this is for showing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PostError {
    /// The request could not be sent at all: nothing went out.
    #[error(
        "could not post {what} to {url}: {reason}; nothing was sent, and the pipeline went on without it"
    )]
    Invalid {
        what: String,
        url: String,
        reason: String,
    },
    /// The forge refused it with an answer that trying again would not
    /// change (a 4xx other than 408 and 429, or a redirect).
    #[error(
        "could not post {what} to {url}: {last}, after {}; not tried again, since the forge would answer the same (check the app's forge token, the repository and the commit); the pipeline went on without it",
        tries(.attempts)
    )]
    Rejected {
        what: String,
        url: String,
        last: Failure,
        attempts: u32,
    },
    /// Every try failed: no answer, a timeout, or 408, 429 or 5xx.
    #[error(
        "could not post {what} to {url}: {last}, after {}; gave up, and the pipeline went on without it",
        tries(.attempts)
    )]
    GaveUp {
        what: String,
        url: String,
        last: Failure,
        attempts: u32,
    },
}

#[cfg(test)]
impl PostError {
    /// How many tries were made (0: nothing was sent).
    pub(crate) fn attempts(&self) -> u32 {
        match self {
            PostError::Invalid { .. } => 0,
            PostError::Rejected { attempts, .. } | PostError::GaveUp { attempts, .. } => *attempts,
        }
    }

    /// The forge's last answer, if the last try got one.
    pub(crate) fn last_status(&self) -> Option<u16> {
        match self {
            PostError::Rejected { last, .. } | PostError::GaveUp { last, .. } => last.status(),
            PostError::Invalid { .. } => None,
        }
    }

    /// Where it was posted, without any `user:password@`.
    pub(crate) fn url(&self) -> &str {
        match self {
            PostError::Invalid { url, .. }
            | PostError::Rejected { url, .. }
            | PostError::GaveUp { url, .. } => url,
        }
    }
}

/// What went wrong with one try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The forge answered `status`; `answer` is its message, shortened,
    /// with the token blanked out.
    Answered { status: u16, answer: String },
    /// No connection, or the connection broke before the answer: the
    /// error and its causes.
    Connection(String),
    /// No whole answer within the time allowed.
    Timeout(Duration),
}

impl Failure {
    /// The HTTP status, if there was an answer.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Failure::Answered { status, .. } => Some(*status),
            Failure::Connection(_) | Failure::Timeout(_) => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Answered { status, answer } => {
                write!(f, "the forge answered HTTP {status}")?;
                if let Some(reason) = StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                {
                    write!(f, " {reason}")?;
                }
                if !answer.is_empty() {
                    write!(f, " ({answer})")?;
                }
                Ok(())
            }
            Failure::Connection(error) => write!(f, "could not reach it: {error}"),
            Failure::Timeout(limit) => {
                write!(f, "no answer within {}", humantime::format_duration(*limit))
            }
        }
    }
}

fn tries(attempts: &u32) -> String {
    match attempts {
        1 => "1 try".to_owned(),
        n => format!("{n} tries"),
    }
}

/// Posts `req` with a [`Poster`] of its own: see [`Poster::post`].
pub async fn post(req: &StatusRequest) -> Result<Posted, PostError> {
    Poster::new().post(req).await
}

/// Sends commit statuses. Cheap to clone; clones share connections.
#[derive(Debug, Clone)]
pub(crate) struct Poster {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Multiplies the backoff delays: 1 but in tests.
    sleep_scale: f64,
    /// How long one try may take.
    timeout: Duration,
}

impl Default for Poster {
    fn default() -> Self {
        Self::new()
    }
}

impl Poster {
    /// A poster with the real delays and [`ATTEMPT_TIMEOUT`].
    pub(crate) fn new() -> Self {
        Self::with_timing(1.0, ATTEMPT_TIMEOUT)
    }

    /// A poster whose backoff delays are multiplied by `sleep_scale` (0:
    /// no waiting) and whose tries each get `timeout`, for tests.
    #[cfg(test)]
    pub(crate) fn for_tests(sleep_scale: f64, timeout: Duration) -> Self {
        Self::with_timing(sleep_scale, timeout)
    }

    fn with_timing(sleep_scale: f64, timeout: Duration) -> Self {
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config())
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Poster {
            client,
            sleep_scale,
            timeout,
        }
    }

    /// Sends `req`, trying again while it is worth it; see the module
    /// docs. `Ok` once the forge answers 2xx.
    pub(crate) async fn post(&self, req: &StatusRequest) -> Result<Posted, PostError> {
        let what = describe(&req.body);
        let url = shown_url(&req.url);
        let prepared = match Prepared::new(req) {
            Ok(prepared) => prepared,
            Err(reason) => return Err(PostError::Invalid { what, url, reason }),
        };
        let secrets = secrets(req);

        let mut last = Failure::Connection("not tried".to_owned());
        let mut attempts = 0;
        for attempt in 0..STATUS_ATTEMPTS {
            let delay = self.delay(attempt);
            if !delay.is_zero() {
                tracing::info!(
                    url = %url,
                    attempt = attempt + 1,
                    error = %last,
                    retry_in = %humantime::format_duration(delay),
                    "a commit status was not posted; trying again"
                );
                tokio::time::sleep(delay).await;
            }
            attempts = attempt + 1;
            let once = tokio::time::timeout(self.timeout, self.once(prepared.request()));
            last = match once.await {
                Ok(Ok((status, _))) if (200..300).contains(&status) => {
                    tracing::debug!(url = %url, status, attempts, "commit status posted");
                    return Ok(Posted { status, attempts });
                }
                Ok(Ok((status, body))) => Failure::Answered {
                    status,
                    answer: excerpt(&body, &secrets),
                },
                Ok(Err(error)) => Failure::Connection(error),
                Err(_) => Failure::Timeout(self.timeout),
            };
            if !retryable(last.status()) {
                return Err(PostError::Rejected {
                    what,
                    url,
                    last,
                    attempts,
                });
            }
        }
        Err(PostError::GaveUp {
            what,
            url,
            last,
            attempts,
        })
    }

    /// The wait before try `attempt`.
    fn delay(&self, attempt: u32) -> Duration {
        Duration::try_from_secs_f64(backoff(attempt).as_secs_f64() * self.sleep_scale)
            .unwrap_or(Duration::ZERO)
    }

    /// One try: the answer's status and (the start of) its body.
    async fn once(&self, request: Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| error_chain(&e))?;
        let status = response.status().as_u16();
        // An answer whose body breaks off still has its status.
        let body = Limited::new(response.into_body(), ANSWER_LIMIT)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok((status, body))
    }
}

/// A request checked once, to be sent as often as needed.
struct Prepared {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Prepared {
    /// Errors never carry a header's value.
    fn new(req: &StatusRequest) -> Result<Self, String> {
        let uri: Uri = req
            .url
            .parse()
            .map_err(|e| format!("the URL is not valid: {e}"))?;
        let scheme_ok = uri
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
        if !scheme_ok || uri.host().is_none_or(str::is_empty) {
            return Err("the URL is not an http:// or https:// URL with a host".to_owned());
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &req.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{}` is not a header name", name.escape_default()))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| format!("the value of header `{header}` cannot be sent"))?;
            if SECRET_HEADERS.contains(&header.as_str()) {
                value.set_sensitive(true);
            }
            headers.append(header, value);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let body = serde_json::to_vec(&req.body)
            .map_err(|e| format!("the body is not JSON: {e}"))?
            .into();
        Ok(Prepared {
            method: req.method.clone(),
            uri,
            headers,
            body,
        })
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// rustls with ring, trusting the system's CA certificates (and
/// `SSL_CERT_FILE`/`SSL_CERT_DIR`), loaded once.
fn tls_config() -> rustls::ClientConfig {
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "a CA certificate of the system did not load");
            }
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                tracing::warn!(
                    "no CA certificates found on this system: commit statuses cannot be posted to https:// forges"
                );
            }
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
        })
        .clone()
}

/// "commit status `wharf/ci` (success)", from the body of any forge.
fn describe(body: &Value) -> String {
    let name = ["context", "name", "key"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str));
    let state = body.get("state").and_then(Value::as_str);
    match (name, state) {
        (Some(name), Some(state)) => format!("commit status `{name}` ({state})"),
        (Some(name), None) => format!("commit status `{name}`"),
        (None, Some(state)) => format!("a commit status ({state})"),
        (None, None) => "a commit status".to_owned(),
    }
}

/// `url` without a `user:password@`.
fn shown_url(url: &str) -> String {
    let url = url.trim();
    if let Some((scheme, rest)) = url.split_once("://") {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if let Some((_, host)) = authority.rsplit_once('@') {
            return format!("{scheme}://{host}{path}");
        }
    }
    url.to_owned()
}

/// The secret header values, whole and without their scheme word, to
/// blank out of anything shown.
fn secrets(req: &StatusRequest) -> Vec<String> {
    let mut secrets = Vec::new();
    for (name, value) in &req.headers {
        if SECRET_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            let value = value.trim();
            secrets.push(value.to_owned());
            if let Some((_, token)) = value.rsplit_once(' ') {
                secrets.push(token.trim().to_owned());
            }
        }
    }
    secrets.retain(|s| !s.is_empty());
    // Longest first, so a whole value goes before the token inside it.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

/// The forge's message in `body`, on one line, shortened, with `secrets`
/// blanked out.
fn excerpt(body: &[u8], secrets: &[String]) -> String {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| json_message(&v))
        .unwrap_or_else(|| text.into_owned());
    let mut line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    for secret in secrets {
        line = line.replace(secret.as_str(), "<redacted>");
    }
    if line.chars().count() > EXCERPT_CHARS {
        line = line.chars().take(EXCERPT_CHARS - 1).collect();
        line.push('…');
    }
    line
}

/// GitHub, Gitea and GitLab say `{"message": …}` (GitLab's may be an
/// object), GitLab also `{"error": "…"}`, Bitbucket
/// `{"error": {"message": "…"}}`.
fn json_message(v: &Value) -> Option<String> {
    ["message", "error"]
        .iter()
        .find_map(|key| match v.get(*key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Object(o) if o.get("message").is_some_and(Value::is_string) => {
                o.get("message").and_then(Value::as_str).map(str::to_owned)
            }
            other => Some(other.to_string()),
        })
}

/// An error and its causes, on one line, each said once.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use std::time::Instant;

    use hyper::Response;
    use hyper::body::Incoming;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use serde_json::json;
    use tokio::net::TcpListener;
    use wharf_forge::{Forge, Status, StatusState, status_request};

    use super::*;

    const SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
    const TOKEN: &str = "ghp_s3cr3tT0ken";

    /// What the double saw of one request.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body: Value,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A forge's statuses API on 127.0.0.1: answers the scripted statuses
    /// in turn (then 201), and records each request.
    struct Double {
        addr: SocketAddr,
        seen: Arc<Mutex<Vec<Seen>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Double {
        async fn start(script: &[u16]) -> Double {
            Self::start_with(script, false).await
        }

        /// A double that reads requests and never answers.
        async fn silent() -> Double {
            Self::start_with(&[], true).await
        }

        async fn start_with(script: &[u16], silent: bool) -> Double {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
            let task = tokio::spawn({
                let seen = seen.clone();
                async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        let seen = seen.clone();
                        let script = script.clone();
                        let service = service_fn(move |req: Request<Incoming>| {
                            let seen = seen.clone();
                            let script = script.clone();
                            async move { answer(req, &seen, &script, silent).await }
                        });
                        tokio::spawn(async move {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                }
            });
            Double { addr, seen, task }
        }

        fn base(&self) -> String {
            format!("http://{}", self.addr)
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    impl Drop for Double {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn answer(
        req: Request<Incoming>,
        seen: &Mutex<Vec<Seen>>,
        script: &Mutex<VecDeque<u16>>,
        silent: bool,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        seen.lock().unwrap().push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        if silent {
            std::future::pending::<()>().await;
        }
        let status = script.lock().unwrap().pop_front().unwrap_or(201);
        let body = if status < 300 {
            json!({"id": 1, "state": "success"})
        } else {
            // A forge that echoes what it got must not leak the token.
            json!({"message": format!("Validation Failed: Bearer {TOKEN} is fine"), "status": status})
        };
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(response)
    }

    fn request(forge: Forge, base: &str) -> StatusRequest {
        let status = Status {
            state: StatusState::Success,
            context: "wharf/ci".into(),
            description: Some("CI passed in 1m3.25s".into()),
            target_url: Some("https://wharf.example.com/apps/shop/pipelines/7".into()),
        };
        status_request(forge, base, "octo/app", SHA, TOKEN, &status).unwrap()
    }

    fn fast() -> Poster {
        Poster::for_tests(0.0, Duration::from_secs(5))
    }

    fn assert_no_token(text: &str) {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }

    #[tokio::test]
    async fn posts_once_when_the_forge_takes_it() {
        let double = Double::start(&[201]).await;
        let req = request(Forge::GitHub, &double.base());
        let posted = post(&req).await.unwrap();
        assert_eq!(
            posted,
            Posted {
                status: 201,
                attempts: 1
            }
        );
        let seen = double.seen();
        assert_eq!(seen.len(), 1);
        let got = &seen[0];
        assert_eq!(got.method, "POST");
        assert_eq!(got.path, format!("/repos/octo/app/statuses/{SHA}"));
        assert_eq!(
            got.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(got.header("content-type"), Some("application/json"));
        assert_eq!(
            got.header("accept"),
            Some("application/vnd.github+json"),
            "the request's own headers are sent"
        );
        assert_eq!(
            got.body,
            json!({
                "state": "success", "context": "wharf/ci",
                "description": "CI passed in 1m3.25s",
                "target_url": "https://wharf.example.com/apps/shop/pipelines/7"
            })
        );
    }

    #[tokio::test]
    async fn gitlab_token_header_reaches_the_forge() {
        let double = Double::start(&[]).await;
        let req = request(Forge::GitLab, &format!("{}/api/v4", double.base()));
        let posted = fast().post(&req).await.unwrap();
        assert_eq!(posted.attempts, 1);
        let seen = double.seen();
        assert_eq!(
            seen[0].path,
            format!("/api/v4/projects/octo%2Fapp/statuses/{SHA}")
        );
        assert_eq!(seen[0].header("private-token"), Some(TOKEN));
        assert_eq!(seen[0].body["state"], "success");
        assert_eq!(seen[0].body["name"], "wharf/ci");
    }

    #[tokio::test]
    async fn a_server_error_is_tried_again() {
        let double = Double::start(&[500, 201]).await;
        let req = request(Forge::GitHub, &double.base());
        let posted = fast().post(&req).await.unwrap();
        assert_eq!(
            posted,
            Posted {
                status: 201,
                attempts: 2
            }
        );
        let seen = double.seen();
        assert_eq!(seen.len(), 2);
        for got in &seen {
            assert_eq!(
                got.header("authorization"),
                Some(format!("Bearer {TOKEN}").as_str())
            );
            assert_eq!(got.body["context"], "wharf/ci");
        }
    }

    #[tokio::test]
    async fn a_refusal_is_not_tried_again() {
        let double = Double::start(&[422, 201]).await;
        let req = request(Forge::GitHub, &double.base());
        let err = fast().post(&req).await.unwrap_err();
        assert!(matches!(err, PostError::Rejected { .. }), "{err:?}");
        assert_eq!(err.attempts(), 1);
        assert_eq!(err.last_status(), Some(422));
        assert_eq!(double.seen().len(), 1);
        let text = err.to_string();
        assert_no_token(&text);
        assert_no_token(&format!("{err:?}"));
        for part in [
            "commit status `wharf/ci` (success)",
            &format!("{}/repos/octo/app/statuses/{SHA}", double.base()),
            "HTTP 422 Unprocessable Entity",
            "Validation Failed: <redacted> is fine",
            "after 1 try",
            "pipeline went on",
        ] {
            assert!(text.contains(part), "`{part}` not in: {text}");
        }
    }

    #[tokio::test]
    async fn a_rate_limit_is_tried_again_until_a_refusal() {
        let double = Double::start(&[429, 503, 401]).await;
        let req = request(Forge::Gitea, &double.base());
        let err = fast().post(&req).await.unwrap_err();
        assert!(matches!(err, PostError::Rejected { .. }), "{err:?}");
        assert_eq!(err.attempts(), 3);
        assert_eq!(err.last_status(), Some(401));
        assert_no_token(&err.to_string());
    }

    #[tokio::test]
    async fn persistent_server_errors_give_up_after_every_try() {
        let double = Double::start(&[503; 10]).await;
        let req = request(Forge::Bitbucket, &double.base());
        let err = fast().post(&req).await.unwrap_err();
        assert!(matches!(err, PostError::GaveUp { .. }), "{err:?}");
        assert_eq!(err.attempts(), STATUS_ATTEMPTS);
        assert_eq!(err.last_status(), Some(503));
        assert_eq!(double.seen().len(), STATUS_ATTEMPTS as usize);
        assert_no_token(&err.to_string());
    }

    #[tokio::test]
    async fn a_refused_connection_gives_up_after_every_try_quickly() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let req = request(Forge::GitHub, &format!("http://{addr}"));
        // Scaled to a thousandth: 31 ms of backoff in all.
        let poster = Poster::for_tests(0.001, Duration::from_secs(5));
        let started = Instant::now();
        let err = poster.post(&req).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(err, PostError::GaveUp { .. }), "{err:?}");
        assert_eq!(err.attempts(), STATUS_ATTEMPTS);
        assert_eq!(err.last_status(), None);
        assert_eq!(
            err.url(),
            format!("http://{addr}/repos/octo/app/statuses/{SHA}")
        );
        let text = err.to_string();
        assert_no_token(&text);
        for part in [
            "could not reach it",
            "after 6 tries",
            "gave up",
            "pipeline went on",
        ] {
            assert!(text.contains(part), "`{part}` not in: {text}");
        }
        assert!(
            text.to_ascii_lowercase().contains("refused"),
            "the connection error is named: {text}"
        );
    }

    #[tokio::test]
    async fn a_silent_forge_times_out_each_try() {
        let double = Double::silent().await;
        let req = request(Forge::GitHub, &double.base());
        let poster = Poster::for_tests(0.0, Duration::from_millis(300));
        let err = poster.post(&req).await.unwrap_err();
        assert!(matches!(err, PostError::GaveUp { .. }), "{err:?}");
        assert_eq!(err.attempts(), STATUS_ATTEMPTS);
        assert!(err.to_string().contains("no answer within 300ms"), "{err}");
        assert_eq!(double.seen().len(), STATUS_ATTEMPTS as usize);
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_sent_is_not_sent() {
        let mut req = request(Forge::GitHub, "https://api.github.com");
        req.url = "ftp://user:pw@example.com/x".into();
        let err = fast().post(&req).await.unwrap_err();
        assert!(matches!(err, PostError::Invalid { .. }), "{err:?}");
        assert_eq!(err.attempts(), 0);
        assert_eq!(err.url(), "ftp://example.com/x");
        assert!(!err.to_string().contains("pw"), "{err}");

        let mut req = request(Forge::GitHub, "https://api.github.com");
        req.headers
            .push(("Authorization".into(), format!("{TOKEN}\nX-Evil: 1")));
        let err = fast().post(&req).await.unwrap_err();
        assert!(matches!(err, PostError::Invalid { .. }), "{err:?}");
        assert_no_token(&err.to_string());
    }

    #[test]
    fn delays_scale() {
        let poster = Poster::for_tests(0.5, ATTEMPT_TIMEOUT);
        assert_eq!(poster.delay(0), Duration::ZERO);
        assert_eq!(poster.delay(3), Duration::from_secs(2));
        let real = Poster::new();
        assert_eq!(real.delay(5), Duration::from_secs(16));
        let odd = Poster::for_tests(f64::NAN, ATTEMPT_TIMEOUT);
        assert_eq!(odd.delay(5), Duration::ZERO);
    }

    #[test]
    fn shown_urls_lose_their_credentials() {
        assert_eq!(
            shown_url("https://u:p@h.example:8443/a/b?c"),
            "https://h.example:8443/a/b?c"
        );
        assert_eq!(shown_url("https://h.example/a@b"), "https://h.example/a@b");
        assert_eq!(shown_url("not a url"), "not a url");
    }

    #[test]
    fn forge_messages_are_found() {
        let none: &[String] = &[];
        assert_eq!(excerpt(br#"{"message":"Not Found"}"#, none), "Not Found");
        assert_eq!(
            excerpt(br#"{"error":{"message":"Repository not found"}}"#, none),
            "Repository not found"
        );
        assert_eq!(
            excerpt(br#"{"message":{"state":["is invalid"]}}"#, none),
            r#"{"state":["is invalid"]}"#
        );
        assert_eq!(
            excerpt(b"<html>\n  Bad\n Gateway</html>", none),
            "<html> Bad Gateway</html>"
        );
        assert_eq!(excerpt(&[b'x'; 500], none).chars().count(), EXCERPT_CHARS);
    }
}
