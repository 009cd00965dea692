//! Canary support: sticky release assignment, the token-guarded release
//! override, and live per-release stats.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::Full;
use hyper::Request;
use wharf_proxy::stats::WindowStats;
use wharf_proxy::{ProxyConfig, RoutingTable};

use crate::assert_eventually;
use crate::support::*;

const TOKEN: &str = "s3cret-token";
const MINUTE: Duration = Duration::from_secs(60);

type Headers<'a> = Vec<(&'a str, &'a [u8])>;

/// A GET with extra request headers (appended, so a name may repeat).
async fn get_with(c: &HttpClient, url: &str, headers: &[(&str, &[u8])]) -> Got {
    let mut req = Request::get(url);
    for (name, value) in headers {
        req = req.header(*name, HeaderValue::from_bytes(value).unwrap());
    }
    send(c, req.body(Full::<Bytes>::default()).unwrap())
        .await
        .unwrap()
}

/// Every `Set-Cookie` of a response.
fn set_cookies(got: &Got) -> Vec<&str> {
    got.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

/// The release a response assigns with its `wharf_shop` cookie, checking
/// the cookie's attributes; `None` when it sets none.
fn assigned(got: &Got) -> Option<u64> {
    let cookies = set_cookies(got);
    assert!(cookies.len() <= 1, "{cookies:?}");
    let cookie = cookies.first()?;
    let release = cookie
        .strip_prefix("wharf_shop=")
        .and_then(|rest| rest.strip_suffix("; Path=/; HttpOnly; SameSite=Lax"))
        .unwrap_or_else(|| panic!("unexpected Set-Cookie {cookie:?}"));
    Some(release.parse().unwrap())
}

/// Origins "a" (release 1) and "b" (release 2) of app `shop`, routed with
/// weights `wa`/`wb`, plus "c" (release 3) at weight `wc`.
struct Canary {
    p: TestProxy,
    _origins: [Origin; 3],
}

async fn canary(config: ProxyConfig, wa: u32, wb: u32, wc: u32) -> Canary {
    let a = origin("a").run().await;
    let b = origin("b").run().await;
    let c = origin("c").run().await;
    let p = TestProxy::start(config).await;
    let ba = p.backend("a-1", a.addr, "shop", 1);
    let bb = p.backend("b-1", b.addr, "shop", 2);
    let bc = p.backend("c-1", c.addr, "shop", 3);
    p.proxy.swap(RoutingTable::new(vec![route(
        "shop",
        None,
        "/",
        groups(vec![
            (1, wa, vec![ba]),
            (2, wb, vec![bb]),
            (3, wc, vec![bc]),
        ]),
    )]));
    Canary {
        p,
        _origins: [a, b, c],
    }
}

fn origin_of(release: u64) -> &'static str {
    match release {
        1 => "a",
        2 => "b",
        3 => "c",
        _ => panic!("no origin for release {release}"),
    }
}

#[tokio::test]
async fn sticky_client_stays_on_its_release() {
    let cn = canary(test_config(), 50, 50, 0).await;
    let c = client();
    let url = cn.p.url("/page");
    // Several clients, so that (most likely) both releases are seen.
    for _ in 0..6 {
        let first = get(&c, &url).await;
        assert_eq!(first.status, 200, "{}", first.body);
        let release = assigned(&first).expect("a new client gets a cookie");
        assert_eq!(first.origin(), origin_of(release));
        // The origin sees no cookie: the client had none.
        assert_eq!(first.seen("cookie"), None);

        let plain = format!("wharf_shop={release}");
        let crowded = format!("theme=dark;  wharf_shop={release} ; session=abc=def");
        for i in 0..100 {
            let cookie = if i % 2 == 0 { &plain } else { &crowded };
            let got = get_with(&c, &url, &[("cookie", cookie.as_bytes())]).await;
            assert_eq!(got.status, 200);
            assert_eq!(got.origin(), origin_of(release), "request {i}");
            assert_eq!(assigned(&got), None, "kept assignment: no Set-Cookie");
        }
    }
}

#[tokio::test]
async fn new_clients_split_by_weight() {
    let cn = canary(test_config(), 50, 50, 0).await;
    let c = client();
    let mut counts = [0u32; 2];
    let n = 400;
    for _ in 0..n {
        let got = get(&c, &cn.p.url("/")).await;
        assert_eq!(got.status, 200);
        let release = assigned(&got).expect("every cookie-less request is assigned");
        assert_eq!(got.origin(), origin_of(release));
        counts[usize::try_from(release).unwrap() - 1] += 1;
    }
    // Binomial(400, 0.5): sd 10; 130..=270 is 7 sd away.
    assert_eq!(counts[0] + counts[1], n);
    assert!((130..=270).contains(&counts[0]), "{counts:?}");
}

#[tokio::test]
async fn stale_cookie_is_reassigned() {
    // Release 3 is in the set at weight 0: not a valid assignment.
    let cn = canary(test_config(), 50, 50, 0).await;
    let c = client();
    for cookie in ["wharf_shop=3", "wharf_shop=7", "wharf_shop=3; wharf_shop=9"] {
        for _ in 0..20 {
            let got = get_with(&c, &cn.p.url("/"), &[("cookie", cookie.as_bytes())]).await;
            assert_eq!(got.status, 200, "{cookie}");
            let release = assigned(&got).unwrap_or_else(|| panic!("{cookie}: no new cookie"));
            assert!(release == 1 || release == 2, "{cookie}: {release}");
            assert_eq!(got.origin(), origin_of(release), "{cookie}");
        }
    }
    // A stale cookie before a valid one: the valid one wins, nothing is set.
    for _ in 0..20 {
        let got = get_with(
            &c,
            &cn.p.url("/"),
            &[("cookie", b"wharf_shop=3"), ("cookie", b"wharf_shop=2")],
        )
        .await;
        assert_eq!((got.origin(), assigned(&got)), ("b", None));
    }

    // The canary is rolled back (weight 0): its clients move, with a new cookie.
    let a = origin("a2").run().await;
    let b = origin("b2").run().await;
    cn.p.proxy.swap(RoutingTable::new(vec![route(
        "shop",
        None,
        "/",
        groups(vec![
            (1, 50, vec![cn.p.backend("a-2", a.addr, "shop", 1)]),
            (4, 50, vec![cn.p.backend("d-1", b.addr, "shop", 4)]),
            (2, 0, vec![cn.p.backend("b-2", b.addr, "shop", 2)]),
        ]),
    )]));
    for _ in 0..20 {
        let got = get_with(&c, &cn.p.url("/"), &[("cookie", b"wharf_shop=2")]).await;
        let release = assigned(&got).expect("reassigned");
        assert!(release == 1 || release == 4, "{release}");
    }
}

#[tokio::test]
async fn single_group_routes_set_no_cookie() {
    // One group only; and a set whose other groups have weight 0 (the
    // cookie is not even read: it names a weight-0 release that is ignored).
    for (wa, wb, wc) in [(100, 0, 0), (0, 0, 100)] {
        let cn = canary(test_config(), wa, wb, wc).await;
        let c = client();
        let want = if wa > 0 { "a" } else { "c" };
        for cookie in [&b""[..], b"wharf_shop=2", b"wharf_shop=1", b"wharf_shop=3"] {
            for _ in 0..10 {
                let got = get_with(&c, &cn.p.url("/"), &[("cookie", cookie)]).await;
                assert_eq!(got.status, 200);
                assert_eq!(got.origin(), want);
                assert!(set_cookies(&got).is_empty(), "{:?}", got.headers);
            }
        }
    }
    let a = origin("a").run().await;
    let p = TestProxy::start(test_config()).await;
    p.route_all("shop", 1, vec![p.backend("a-1", a.addr, "shop", 1)]);
    let c = client();
    for _ in 0..10 {
        let got = get(&c, &p.url("/")).await;
        assert_eq!((got.status, set_cookies(&got).len()), (200, 0));
    }
}

#[tokio::test]
async fn malformed_cookies_do_not_fail_requests() {
    let cn = canary(test_config(), 50, 50, 0).await;
    let c = client();
    let bad: &[&[&[u8]]] = &[
        &[b"wharf_shop="],
        &[b"wharf_shop"],
        &[b"wharf_shop=abc"],
        &[b"wharf_shop=-1"],
        &[b"wharf_shop=1.0"],
        &[b"wharf_shop=99999999999999999999999999"],
        &[b";;;;"],
        &[b"=;=;=1"],
        &[b"wharf_shop=\xff\xfe"],
        &[b"\x80\x81=2; \xff"],
        &[b"WHARF_SHOP=1"],
        &[b"a=1", b"b=2", b"wharf_shop=zzz"],
        &[b"wharf_shop=\"\""],
    ];
    for headers in bad {
        let hs: Vec<(&str, &[u8])> = headers.iter().map(|v| ("cookie", *v)).collect();
        let got = get_with(&c, &cn.p.url("/"), &hs).await;
        assert_eq!(got.status, 200, "{headers:?}: {}", got.body);
        let release = assigned(&got).unwrap_or_else(|| panic!("{headers:?}: not assigned"));
        assert_eq!(got.origin(), origin_of(release), "{headers:?}");
    }
    // Quoted and padded values are fine.
    let got = get_with(&c, &cn.p.url("/"), &[("cookie", b"wharf_shop=\"2\"")]).await;
    assert_eq!((got.origin(), assigned(&got)), ("b", None));
    let got = get_with(&c, &cn.p.url("/"), &[("cookie", b" x=1 ;wharf_shop= 1 ;")]).await;
    assert_eq!((got.origin(), assigned(&got)), ("a", None));
}

fn with_token() -> ProxyConfig {
    ProxyConfig {
        override_token: Some(TOKEN.to_owned()),
        ..test_config()
    }
}

#[tokio::test]
async fn override_with_token_reaches_weight_zero_release() {
    let cn = canary(with_token(), 100, 0, 0).await;
    let c = client();
    for _ in 0..10 {
        let got = get_with(
            &c,
            &cn.p.url("/"),
            &[
                ("x-wharf-release", b"2"),
                ("x-wharf-token", TOKEN.as_bytes()),
            ],
        )
        .await;
        assert_eq!((got.status, got.origin()), (200, "b"), "{}", got.body);
        assert_eq!(got.seen("x-wharf-release"), None, "{}", got.body);
        assert_eq!(got.seen("x-wharf-token"), None, "{}", got.body);
        assert!(set_cookies(&got).is_empty());
    }
    // A route with a split: overrides neither read nor set the cookie.
    let cn = canary(with_token(), 50, 50, 0).await;
    for _ in 0..10 {
        let got = get_with(
            &c,
            &cn.p.url("/"),
            &[
                ("cookie", b"wharf_shop=1"),
                ("x-wharf-release", b"3"),
                ("x-wharf-token", TOKEN.as_bytes()),
            ],
        )
        .await;
        assert_eq!((got.status, got.origin()), (200, "c"));
        assert!(set_cookies(&got).is_empty(), "{:?}", got.headers);
        let got = get_with(
            &c,
            &cn.p.url("/"),
            &[
                ("x-wharf-release", b"2"),
                ("x-wharf-token", TOKEN.as_bytes()),
            ],
        )
        .await;
        assert_eq!((got.status, got.origin()), (200, "b"));
        assert!(set_cookies(&got).is_empty(), "{:?}", got.headers);
    }
}

#[tokio::test]
async fn override_without_valid_token_is_ignored_and_stripped() {
    let almost = &TOKEN.as_bytes()[..TOKEN.len() - 1];
    let mut wrong = TOKEN.as_bytes().to_vec();
    wrong[0] ^= 1;
    let cases: Vec<(ProxyConfig, Headers)> = vec![
        (with_token(), vec![("x-wharf-release", b"2")]),
        (
            with_token(),
            vec![("x-wharf-release", b"2"), ("x-wharf-token", &wrong)],
        ),
        (
            with_token(),
            vec![("x-wharf-release", b"2"), ("x-wharf-token", almost)],
        ),
        (
            with_token(),
            vec![("x-wharf-release", b"2"), ("x-wharf-token", b"")],
        ),
        (with_token(), vec![("x-wharf-token", TOKEN.as_bytes())]),
        // Overrides not configured: even the "right" token does nothing.
        (
            test_config(),
            vec![
                ("x-wharf-release", b"2"),
                ("x-wharf-token", TOKEN.as_bytes()),
            ],
        ),
        (
            ProxyConfig {
                override_token: Some(String::new()),
                ..test_config()
            },
            vec![("x-wharf-release", b"2"), ("x-wharf-token", b"")],
        ),
    ];
    for (i, (config, headers)) in cases.into_iter().enumerate() {
        let cn = canary(config, 100, 0, 0).await;
        let c = client();
        let got = get_with(&c, &cn.p.url("/"), &headers).await;
        assert_eq!((got.status, got.origin()), (200, "a"), "case {i}");
        assert_eq!(got.seen("x-wharf-release"), None, "case {i}: {}", got.body);
        assert_eq!(got.seen("x-wharf-token"), None, "case {i}: {}", got.body);
    }
}

#[tokio::test]
async fn override_to_unknown_release_is_503() {
    let cn = canary(with_token(), 100, 0, 0).await;
    let c = client();
    let got = get_with(
        &c,
        &cn.p.url("/"),
        &[
            ("x-wharf-release", b"9"),
            ("x-wharf-token", TOKEN.as_bytes()),
        ],
    )
    .await;
    assert_eq!(got.status, 503, "{}", got.body);
    assert!(
        got.body
            .to_lowercase()
            .contains("release 9 is not serving this route"),
        "{}",
        got.body
    );
    assert!(got.header("content-type").starts_with("text/html"));
    // Not a number: the client's mistake.
    let got = get_with(
        &c,
        &cn.p.url("/"),
        &[
            ("x-wharf-release", b"<b>"),
            ("x-wharf-token", TOKEN.as_bytes()),
        ],
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert!(!got.body.contains("<b>"), "{}", got.body);
    // Neither counts as any release's traffic.
    for release in [1, 2, 3, 9] {
        assert_eq!(
            cn.p.proxy.release_stats("shop", release, MINUTE).requests,
            0
        );
    }
}

#[tokio::test]
async fn release_stats_count_requests_errors_and_latency() {
    let a = origin("a").run().await;
    let p = TestProxy::start(test_config()).await;
    let ba = p.backend("a-1", a.addr, "shop", 1);
    let dead = p.backend("dead-1", dead_addr().await, "shop", 2);
    p.proxy.swap(RoutingTable::new(vec![
        route(
            "shop",
            Some("shop.test"),
            "/",
            groups(vec![(1, 100, vec![ba])]),
        ),
        route(
            "shop",
            Some("canary.test"),
            "/",
            groups(vec![(2, 100, vec![dead])]),
        ),
    ]));
    let c = client();
    assert_eq!(p.proxy.release_stats("shop", 1, MINUTE), WindowStats::new());

    // 30 requests to release 1: 8 answered 500 by the origin, 2 slow.
    for i in 0..30 {
        let path = match i {
            _ if i % 4 == 0 => "/?status=500",
            10 | 11 => "/?sleep=60",
            _ => "/",
        };
        let got = get_host(&c, &p.url(path), "shop.test").await;
        assert_eq!(got.origin(), "a");
    }
    // 3 to release 2, whose instance is gone: the proxy's own 502s.
    for _ in 0..3 {
        let got = get_host(&c, &p.url("/"), "canary.test").await;
        assert_eq!(got.status, 502);
    }
    // No route: counts nowhere.
    let got = get_host(&c, &p.url("/"), "nowhere.test").await;
    assert_eq!(got.status, 404);

    // The exchange is settled when the response body is done, which may be
    // a moment after the client has it.
    assert_eventually!(
        p.proxy.release_stats("shop", 1, MINUTE).requests == 30
            && p.proxy.release_stats("shop", 2, MINUTE).requests == 3,
        "stats: {:?}",
        p.proxy.release_stats("shop", 1, MINUTE)
    );
    let s = p.proxy.release_stats("shop", 1, MINUTE);
    assert_eq!((s.requests, s.errors), (30, 8));
    assert_eq!(s.latency.count(), 30);
    assert!(s.p99().unwrap() >= Duration::from_millis(60), "{s:?}");
    assert!(s.p50().unwrap() < Duration::from_millis(60), "{s:?}");
    let s = p.proxy.release_stats("shop", 2, MINUTE);
    assert_eq!((s.requests, s.errors, s.latency.count()), (3, 3, 3));
    // A short window still holds what just happened.
    assert_eq!(
        p.proxy
            .release_stats("shop", 1, Duration::from_secs(5))
            .requests,
        30
    );

    // Unknown releases and apps: empty.
    assert_eq!(p.proxy.release_stats("shop", 3, MINUTE), WindowStats::new());
    assert_eq!(p.proxy.release_stats("blog", 1, MINUTE), WindowStats::new());
    assert_eq!(p.proxy.release_stats("none", 0, MINUTE), WindowStats::new());
}

#[tokio::test]
async fn release_stats_follow_the_release_across_swaps_and_backends() {
    let a = origin("a").run().await;
    let b = origin("b").run().await;
    let p = TestProxy::start(test_config()).await;
    let c = client();
    p.route_all("shop", 1, vec![p.backend("a-1", a.addr, "shop", 1)]);
    for _ in 0..5 {
        get(&c, &p.url("/")).await;
    }
    // A new table with new backends of the same release: same window.
    p.route_all(
        "shop",
        1,
        vec![
            p.backend("a-2", a.addr, "shop", 1),
            p.backend("b-2", b.addr, "shop", 1),
        ],
    );
    for _ in 0..5 {
        get(&c, &p.url("/?status=503")).await;
    }
    assert_eventually!(
        p.proxy.release_stats("shop", 1, MINUTE).requests == 10,
        "{:?}",
        p.proxy.release_stats("shop", 1, MINUTE)
    );
    assert_eq!(p.proxy.release_stats("shop", 1, MINUTE).errors, 5);
}
