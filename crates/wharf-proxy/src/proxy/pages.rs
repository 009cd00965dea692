//! The proxy's own responses: small HTML pages (404, 502, 503…), and the
//! 503 with `Retry-After` of a route marked unavailable.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::exchange::{Exchange, Kind, ProxyBody};
use super::headers::X_REQUEST_ID;

/// The proxy's own responses: small static HTML pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    NotFound,
    NoBackend,
    Unreachable,
    BadGateway,
    Timeout,
    TooLarge,
    BadRequest,
    Internal,
}

macro_rules! html {
    ($code:literal, $title:literal, $msg:literal) => {
        concat!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>",
            $code,
            " ",
            $title,
            "</title></head>\n<body><h1>",
            $code,
            " ",
            $title,
            "</h1>\n<p>",
            $msg,
            "</p>\n<hr><p>wharf</p></body></html>\n"
        )
    };
}

impl Page {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Page::NotFound => StatusCode::NOT_FOUND,
            Page::NoBackend => StatusCode::SERVICE_UNAVAILABLE,
            Page::Unreachable | Page::BadGateway => StatusCode::BAD_GATEWAY,
            Page::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Page::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Page::BadRequest => StatusCode::BAD_REQUEST,
            Page::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn body(self) -> &'static str {
        match self {
            Page::NotFound => html!(
                "404",
                "Not Found",
                "No app is routed for this host and path."
            ),
            Page::NoBackend => html!(
                "503",
                "Service Unavailable",
                "The app has no healthy instance right now. Please try again shortly."
            ),
            Page::Unreachable => {
                html!(
                    "502",
                    "Bad Gateway",
                    "The app could not be reached: its instance refused or did not accept the connection."
                )
            }
            Page::BadGateway => {
                html!(
                    "502",
                    "Bad Gateway",
                    "The app closed the connection or sent an invalid response."
                )
            }
            Page::Timeout => html!("504", "Gateway Timeout", "The app did not respond in time."),
            Page::TooLarge => html!(
                "413",
                "Content Too Large",
                "The request body is larger than this server accepts."
            ),
            Page::BadRequest => html!("400", "Bad Request", "The request body could not be read."),
            Page::Internal => html!(
                "500",
                "Internal Server Error",
                "The proxy failed to handle the request."
            ),
        }
    }

    /// Pages sent before the request body was read end the connection, so
    /// the unread body is never parsed as a next request.
    pub(crate) fn closes(self) -> bool {
        matches!(self, Page::TooLarge | Page::BadRequest)
    }
}

pub(crate) fn page(p: Page, rid: HeaderValue, ex: Exchange) -> Response<ProxyBody> {
    let body = Bytes::from_static(p.body().as_bytes());
    respond(p.status(), body, p.closes(), rid, ex)
}

/// 503 with `Retry-After` for a route marked [`crate::Unavailable`].
pub(crate) fn unavailable(
    down: &crate::Unavailable,
    rid: HeaderValue,
    ex: Exchange,
) -> Response<ProxyBody> {
    let body = html_page(StatusCode::SERVICE_UNAVAILABLE, &down.message);
    let mut resp = respond(StatusCode::SERVICE_UNAVAILABLE, body, false, rid, ex);
    let secs = down.retry_after.as_secs().max(1);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// A page like [`Page`]'s with a message made at run time (HTML-escaped).
pub(crate) fn html_page(status: StatusCode, msg: &str) -> Bytes {
    let code = status.as_str();
    let title = status.canonical_reason().unwrap_or("");
    let mut escaped = String::with_capacity(msg.len());
    for c in msg.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            c => escaped.push(c),
        }
    }
    Bytes::from(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\n\
         <body><h1>{code} {title}</h1>\n<p>{escaped}</p>\n<hr><p>wharf</p></body></html>\n"
    ))
}

/// One of the proxy's own HTML responses.
pub(crate) fn respond(
    status: StatusCode,
    body: Bytes,
    closes: bool,
    rid: HeaderValue,
    mut ex: Exchange,
) -> Response<ProxyBody> {
    ex.status = status.as_u16();
    let mut resp = Response::new(ProxyBody {
        kind: Kind::Page(Some(body)),
        done: false,
        ex: Some(ex),
    });
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_REQUEST_ID.clone(), rid);
    if closes {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A plain-text answer of the proxy's own (an ACME challenge's).
pub(crate) fn plain(
    status: StatusCode,
    text: String,
    rid: HeaderValue,
    ex: Exchange,
) -> Response<ProxyBody> {
    let mut resp = respond(status, Bytes::from(text), false, rid, ex);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// `308 Permanent Redirect` to `location` (plain HTTP to HTTPS; the method
/// and body are kept by the client).
pub(crate) fn redirect(location: &str, rid: HeaderValue, ex: Exchange) -> Response<ProxyBody> {
    let body = html_page(
        StatusCode::PERMANENT_REDIRECT,
        &format!("This site is served over HTTPS: {location}"),
    );
    let mut resp = respond(StatusCode::PERMANENT_REDIRECT, body, false, rid, ex);
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}
