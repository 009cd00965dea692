//! Request and response heads: the request id, hop-by-hop headers, the
//! host a request is for, and the rewrite of a client's head for the
//! instance (`X-Forwarded-*`).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Uri, Version};

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
pub(crate) static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
pub(crate) static X_WHARF_RELEASE: HeaderName = HeaderName::from_static("x-wharf-release");
pub(crate) static X_WHARF_TOKEN: HeaderName = HeaderName::from_static("x-wharf-token");

/// The host a request is for: the absolute-form URI's, else the Host header.
pub(crate) fn request_host(parts: &http::request::Parts) -> Option<&str> {
    match parts.uri.authority() {
        Some(a) => Some(a.as_str().rsplit('@').next().unwrap_or(a.as_str())),
        None => parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok()),
    }
}

pub(crate) fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The client's `X-Request-Id` if it is 1..=128 of `[A-Za-z0-9._-]`, else a
/// fresh random 16-byte hex id.
pub(crate) fn request_id(h: &HeaderMap) -> HeaderValue {
    if let Some(v) = h.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if (1..=128).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
        {
            return v.clone();
        }
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = fastrand::u128(..);
    let mut buf = [0u8; 32];
    for slot in buf.iter_mut().rev() {
        *slot = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
    HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0"))
}

/// Removes hop-by-hop headers: those listed in `Connection`, and the
/// standard ones. Used in both directions.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap) {
    if h.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderValue> = h.get_all(header::CONNECTION).iter().cloned().collect();
        h.remove(header::CONNECTION);
        for v in &listed {
            let Ok(s) = v.to_str() else { continue };
            for token in s.split(',') {
                let token = token.trim();
                // Never let a client strip headers the proxy itself relies on.
                if !token.is_empty() && !token.eq_ignore_ascii_case("host") {
                    h.remove(token);
                }
            }
        }
    }
    for name in [
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        if h.contains_key(name) {
            h.remove(name);
        }
    }
}

/// Rewrites the client's request head, in place, for the instance.
///
/// `X-Forwarded-For`, `-Proto` and `-Host` say what the proxy saw (the
/// peer's address, `https` on TLS, the `Host`), replacing whatever the
/// client sent: an app can trust them. From a `trusted` peer (a load
/// balancer in front) they are believed instead: its `X-Forwarded-For` is
/// extended with the peer's address, its `-Proto` and `-Host` kept.
pub(crate) fn prepare_request(
    parts: &mut http::request::Parts,
    rid: &HeaderValue,
    client_hv: &HeaderValue,
    tls: bool,
    trusted: bool,
) {
    let h = &mut parts.headers;
    strip_hop_by_hop(h);
    // Override headers are the proxy's business only, valid token or not.
    if h.contains_key(&X_WHARF_RELEASE) {
        h.remove(&X_WHARF_RELEASE);
    }
    if h.contains_key(&X_WHARF_TOKEN) {
        h.remove(&X_WHARF_TOKEN);
    }
    if h.get(header::HOST).is_none()
        && let Some(a) = parts.uri.authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        // HTTP/2's `:authority`, or an absolute-form HTTP/1.1 request.
        h.insert(header::HOST, v);
    }
    let seen_host = h.get(header::HOST).cloned();
    let xff = if trusted && h.contains_key(&X_FORWARDED_FOR) {
        let mut s = String::new();
        for v in h.get_all(&X_FORWARDED_FOR) {
            if let Ok(v) = v.to_str() {
                s.push_str(v);
                s.push_str(", ");
            }
        }
        s.push_str(client_hv.to_str().unwrap_or(""));
        HeaderValue::from_str(&s).unwrap_or_else(|_| client_hv.clone())
    } else {
        client_hv.clone()
    };
    h.insert(X_FORWARDED_FOR.clone(), xff);
    if !(trusted && h.contains_key(&X_FORWARDED_PROTO)) {
        let proto = if tls { "https" } else { "http" };
        h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if !(trusted && h.contains_key(&X_FORWARDED_HOST)) {
        match seen_host {
            Some(host) => {
                h.insert(X_FORWARDED_HOST.clone(), host);
            }
            None => {
                h.remove(&X_FORWARDED_HOST);
            }
        }
    }
    h.insert(X_REQUEST_ID.clone(), rid.clone());
    parts.version = Version::HTTP_11;
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        // absolute-form from the client → origin-form for the instance
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = Uri::try_from(pq).unwrap_or_else(|_| Uri::from_static("/"));
    }
}
