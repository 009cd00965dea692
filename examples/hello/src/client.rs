//! The HTTP client side of `hello`: forwarding `/kv/*` to the store
//! (`HELLO_KV_URL`) and `hello probe URL`.
//!
//! Built on hyper-util's legacy client (pooled connections, HTTP/1, plain
//! `http://` only): the store and the probed server are on the same host or
//! container network, so there is no TLS to speak.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A pooled HTTP/1 client for `http://` URLs.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A new client; cheap to clone, connections are pooled per host.
pub fn new() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Parses `url` as an absolute `http://` URL with a host.
pub fn parse_http_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|err| format!("{url:?} is not a URL ({err})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "{url:?}: only http:// URLs are supported, not {other}://"
            ));
        }
        None => return Err(format!("{url:?} is not an absolute http:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(uri)
}

/// What a server answered, body read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// Sends one request and reads the whole answer (at most `max_body` bytes),
/// all within `timeout`. The error is one line, meant for a person.
pub async fn send(
    client: &HttpClient,
    method: Method,
    uri: Uri,
    body: Bytes,
    timeout: Duration,
    max_body: usize,
) -> Result<Reply, String> {
    let exchange = async {
        let response = request(client, method, uri, body).await?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, max_body)
            .collect()
            .await
            .map_err(|err| format!("could not read the answer: {}", chain(&*err)))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            body,
        })
    };
    within(timeout, exchange).await
}

/// `hello probe`: GETs `url` within `timeout` and returns its status (the
/// body is not read, so a large one does not matter).
pub async fn probe(url: &str, timeout: Duration) -> Result<StatusCode, String> {
    let uri = parse_http_url(url)?;
    let client = new();
    within(timeout, async {
        let response = request(&client, Method::GET, uri, Bytes::new()).await?;
        Ok(response.status())
    })
    .await
}

async fn request(
    client: &HttpClient,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<Response<Incoming>, String> {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(body))
        .map_err(|err| format!("bad request: {err}"))?;
    client.request(request).await.map_err(|err| chain(&err))
}

async fn within<T>(
    timeout: Duration,
    work: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no answer within {}", humantime::format_duration(timeout)))?
}

/// The error and its sources on one line: hyper's own message alone
/// ("client error (Connect)") does not say what went wrong.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(err) = source {
        let text = err.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = err.source();
    }
    out.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_only() {
        assert!(parse_http_url("http://kv:7000").is_ok());
        assert!(parse_http_url("http://127.0.0.1:7000/up").is_ok());
        let https = parse_http_url("https://kv:7000").unwrap_err();
        assert!(https.contains("only http://"), "{https}");
        assert!(parse_http_url("/up").is_err());
        assert!(parse_http_url("kv:7000").is_err());
        assert!(parse_http_url("not a url").is_err());
        assert!(parse_http_url("").is_err());
    }
}
