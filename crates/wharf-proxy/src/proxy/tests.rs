//! Unit tests of the proxy's pure parts.

use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};

use super::error::*;
use super::headers::*;
use super::pages::*;
use super::select::*;
use crate::pool::ConnectError;

#[test]
fn request_id_kept_or_generated() {
    let mut h = HeaderMap::new();
    h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123_x.y"));
    assert_eq!(request_id(&h), "abc-123_x.y");
    for bad in ["", "has space", "ünï", &"a".repeat(129)] {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(bad) {
            h.insert(&X_REQUEST_ID, v);
        }
        let id = request_id(&h);
        assert_eq!(id.len(), 32, "{bad:?}");
        assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
    }
    assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
}

#[test]
fn hop_by_hop_removed() {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("close, X-Secret"),
    );
    h.insert("x-secret", HeaderValue::from_static("1"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::TRAILER, HeaderValue::from_static("x"));
    h.insert("x-keep", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h.contains_key("x-keep"));
}

#[test]
fn constant_time_eq() {
    assert!(ct_eq(b"", b""));
    assert!(ct_eq(b"s3cret", b"s3cret"));
    assert!(!ct_eq(b"s3cret", b"s3creT"));
    assert!(!ct_eq(b"s3cret", b"X3cret"));
    assert!(!ct_eq(b"s3cret", b"s3cre"));
    assert!(!ct_eq(b"", b"x"));
}

#[test]
fn release_numbers() {
    for (v, want) in [
        (&b"12"[..], Some(12)),
        (b" 7 ", Some(7)),
        (b"\"3\"", Some(3)),
        (b"0", Some(0)),
        (b"18446744073709551615", Some(u64::MAX)),
        (b"18446744073709551616", None),
        (b"", None),
        (b"\"\"", None),
        (b"-1", None),
        (b"+1", None),
        (b"1.0", None),
        (b"abc", None),
        (b"\xff\xfe", None),
        (b"99999999999999999999999", None),
    ] {
        assert_eq!(parse_release(v), want, "{:?}", String::from_utf8_lossy(v));
    }
}

#[test]
fn cookies_parsed_robustly() {
    let mut h = HeaderMap::new();
    let values = |h: &HeaderMap| -> Vec<String> {
        cookie_values(h, "wharf_shop")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    };
    assert!(values(&h).is_empty());
    for v in [
        &b"a=1; wharf_shop=2;b=3"[..],
        b"garbage;;; =;=x; wharf_shop; wharf_shopx=9; xwharf_shop=8",
        b"  wharf_shop = 4 ;WHARF_SHOP=5",
        b"wharf_shop=\"6\"; wharf_shop=a=b",
        b"\xff\xfe=\x80; wharf_shop=\xff",
    ] {
        h.append(header::COOKIE, HeaderValue::from_bytes(v).unwrap());
    }
    assert_eq!(values(&h), ["2", "4", "\"6\"", "a=b", "\u{fffd}"]);
    let releases: Vec<u64> = cookie_values(&h, "wharf_shop")
        .filter_map(parse_release)
        .collect();
    assert_eq!(releases, [2, 4, 6]);
}

#[test]
fn override_needs_the_token() {
    let mut h = HeaderMap::new();
    h.insert(&X_WHARF_RELEASE, HeaderValue::from_static("7"));
    assert_eq!(requested_override(Some("tok"), &h), None, "no token header");
    h.insert(&X_WHARF_TOKEN, HeaderValue::from_static("tok"));
    assert_eq!(requested_override(None, &h), None, "not configured");
    assert_eq!(requested_override(Some(""), &h), None, "empty disables");
    assert_eq!(requested_override(Some("tok2"), &h), None);
    assert_eq!(
        requested_override(Some("tok"), &h),
        Some(Override::Release(7))
    );
    h.insert(&X_WHARF_RELEASE, HeaderValue::from_static("seven"));
    assert_eq!(requested_override(Some("tok"), &h), Some(Override::Invalid));
    h.remove(&X_WHARF_RELEASE);
    assert_eq!(requested_override(Some("tok"), &h), None);
}

#[test]
fn dynamic_pages_are_escaped() {
    let body = html_page(StatusCode::SERVICE_UNAVAILABLE, "release <1> & \"2\"");
    let body = std::str::from_utf8(&body).unwrap();
    assert!(
        body.contains("<title>503 Service Unavailable</title>"),
        "{body}"
    );
    assert!(
        body.contains("<p>release &lt;1&gt; &amp; &quot;2&quot;</p>"),
        "{body}"
    );
}

#[test]
fn error_maps_to_page() {
    let e = ProxyError::from_connect(ConnectError::Refused, true);
    assert_eq!(e.page(), Page::Unreachable);
    assert!(e.retry);
    assert_eq!(e.source_side, ErrorSource::Upstream);
    assert_eq!(Page::Timeout.status(), 504);
    assert!(Page::NotFound.body().contains("404 Not Found"));
}
