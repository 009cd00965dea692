//! End-to-end behaviour of the proxy: pages, headers, selection, swap,
//! drain, limits, retries, metrics, shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wharf_proxy::{BackendSet, ProxyConfig, RoutingTable, drain};

use crate::assert_eventually;
use crate::support::*;

fn is_hex_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

fn assert_page(got: &Got, status: u16) {
    assert_eq!(got.status, status, "{}", got.body);
    assert!(
        got.header("content-type").starts_with("text/html"),
        "{:?}",
        got.headers
    );
    assert!(got.body.contains(&status.to_string()), "{}", got.body);
    assert!(
        !got.body.contains("panicked") && !got.body.contains("Error {"),
        "{}",
        got.body
    );
    assert!(is_hex_id(got.header("x-request-id")), "{:?}", got.headers);
}

#[tokio::test]
async fn proxies_to_the_routed_origin() {
    let a = origin("a").run().await;
    let b = origin("b").run().await;
    let p = TestProxy::start(test_config()).await;
    let ba = p.backend("a-1", a.addr, "shop", 1);
    let bb = p.backend("b-1", b.addr, "blog", 1);
    p.proxy.swap(RoutingTable::new(vec![
        route(
            "shop",
            Some("shop.test"),
            "/",
            BackendSet::single(1, vec![ba]),
        ),
        route("blog", None, "/blog", BackendSet::single(1, vec![bb])),
    ]));
    let c = client();
    let got = get_host(&c, &p.url("/x"), "shop.test:80").await;
    assert_eq!((got.status, got.origin()), (200, "a"));
    let got = get_host(&c, &p.url("/blog/post"), "other.test").await;
    assert_eq!((got.status, got.origin()), (200, "b"));
    assert_eq!(got.seen("host"), Some("other.test"));
}

#[tokio::test]
async fn error_pages() {
    let a = origin("a").run().await;
    let config = ProxyConfig {
        upstream_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let p = TestProxy::start(config).await;
    let live = p.backend("a-1", a.addr, "app", 1);
    let dead = p.backend("dead-1", dead_addr().await, "dead", 1);
    p.proxy.swap(RoutingTable::new(vec![
        route(
            "app",
            Some("app.test"),
            "/",
            BackendSet::single(1, vec![live.clone()]),
        ),
        route("empty", Some("empty.test"), "/", BackendSet::default()),
        route(
            "zero",
            Some("zero.test"),
            "/",
            groups(vec![(1, 0, vec![live.clone()]), (2, 100, vec![])]),
        ),
        route(
            "dead",
            Some("dead.test"),
            "/",
            BackendSet::single(1, vec![dead]),
        ),
    ]));
    let c = client();

    let got = get_host(&c, &p.url("/"), "nothing.test").await;
    assert_page(&got, 404);
    assert!(got.body.contains("No app is routed"), "{}", got.body);

    for host in ["empty.test", "zero.test"] {
        let got = get_host(&c, &p.url("/"), host).await;
        assert_page(&got, 503);
        assert!(got.body.contains("no healthy instance"), "{}", got.body);
    }

    let got = get_host(&c, &p.url("/"), "dead.test").await;
    assert_page(&got, 502);
    assert!(got.body.contains("could not be reached"), "{}", got.body);

    let started = Instant::now();
    let got = get_host(&c, &p.url("/?sleep=2000"), "app.test").await;
    assert_page(&got, 504);
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert!(got.body.contains("did not respond in time"), "{}", got.body);

    // The proxy still works after all that.
    assert_eq!(get_host(&c, &p.url("/"), "app.test").await.status, 200);
    assert_eventually!(
        live.in_flight() == 0,
        "in-flight back to 0, is {}",
        live.in_flight()
    );
}

/// A route marked unavailable (an app being restored) answers 503 with
/// `Retry-After` and its reason, even with a healthy backend in it, and
/// forwards nothing; other routes are not affected.
#[tokio::test]
async fn an_unavailable_route_answers_503_with_retry_after() {
    let a = origin("a").run().await;
    let p = TestProxy::start(test_config()).await;
    let live = p.backend("a-1", a.addr, "app", 1);
    let mut down = route(
        "restoring",
        Some("restoring.test"),
        "/",
        BackendSet::single(1, vec![live.clone()]),
    );
    down.unavailable = Some(Arc::new(wharf_proxy::Unavailable {
        message: "restoring <release 4> after a restart".into(),
        retry_after: Duration::from_secs(5),
    }));
    p.proxy.swap(RoutingTable::new(vec![
        down,
        route("app", None, "/", BackendSet::single(1, vec![live])),
    ]));
    let c = client();
    let got = get_host(&c, &p.url("/x"), "restoring.test").await;
    assert_page(&got, 503);
    assert_eq!(got.header("retry-after"), "5");
    assert!(
        got.body
            .contains("restoring &lt;release 4&gt; after a restart"),
        "{}",
        got.body
    );
    assert_eq!(a.hits(), 0, "nothing is forwarded for an unavailable route");
    let got = get_host(&c, &p.url("/x"), "other.test").await;
    assert_eq!((got.status, got.origin()), (200, "a"));
    assert!(p.metrics().contains("app=\"restoring\""), "{}", p.metrics());
}

#[tokio::test]
async fn forwarding_headers_added_and_hop_by_hop_stripped() {
    let a = origin("a").run().await;
    let p = TestProxy::start(test_config()).await;
    p.route_all("app", 1, vec![p.backend("a-1", a.addr, "app", 1)]);
    let req = "GET /h?hop=1 HTTP/1.1\r\nHost: app.test:8080\r\nX-Forwarded-For: 1.2.3.4\r\n\
               X-Forwarded-Proto: https\r\nX-Forwarded-Host: bank.test\r\n\
               Connection: x-hop, close\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n\
               Proxy-Connection: keep-alive\r\nTE: trailers\r\nX-Request-Id: my-id.1\r\n\r\n";
    let out = raw(p.addr, req.as_bytes(), Duration::from_secs(5)).await;
    let (head, body) = out.split_once("\r\n\r\n").expect(&out);
    assert!(head.starts_with("HTTP/1.1 200"), "{out}");
    let head = head.to_ascii_lowercase();
    // upstream side
    let seen = |name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": ").map(str::to_owned))
    };
    // Not a trusted proxy: what the client claimed is replaced by what the
    // proxy saw.
    assert_eq!(
        seen("x-forwarded-for").as_deref(),
        Some("127.0.0.1"),
        "{body}"
    );
    assert_eq!(seen("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(seen("x-forwarded-host").as_deref(), Some("app.test:8080"));
    assert_eq!(seen("host").as_deref(), Some("app.test:8080"));
    assert_eq!(seen("x-request-id").as_deref(), Some("my-id.1"));
    for gone in [
        "x-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "connection",
    ] {
        assert_eq!(seen(gone), None, "{gone} reached the origin: {body}");
    }
    // downstream side
    assert!(head.contains("\r\nx-request-id: my-id.1"), "{head}");
    assert!(head.contains("\r\nx-kept: 1"), "{head}");
    for gone in ["x-drop-me", "keep-alive", "upgrade"] {
        assert!(
            !head.contains(&format!("\r\n{gone}:")),
            "{gone} reached the client: {head}"
        );
    }
}

/// From a trusted proxy (a load balancer in front), `X-Forwarded-For` is
/// kept and extended with the peer, `-Proto` and `-Host` kept; a peer out
/// of the trusted networks gets them replaced.
#[tokio::test]
async fn forwarded_headers_are_believed_only_from_trusted_proxies() {
    let a = origin("a").run().await;
    let send = |addr| async move {
        let req = "GET / HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.2\r\n\
                   X-Forwarded-Proto: https\r\nX-Forwarded-Host: www.app.test\r\n\
                   Connection: close\r\n\r\n";
        raw(addr, req.as_bytes(), Duration::from_secs(5)).await
    };
    let seen = |out: &str, name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": ").map(str::to_owned))
    };
    let trusting = TestProxy::start(ProxyConfig {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..test_config()
    })
    .await;
    trusting.route_all("app", 1, vec![trusting.backend("a-1", a.addr, "app", 1)]);
    let out = send(trusting.addr).await;
    assert_eq!(
        seen(&out, "x-forwarded-for").as_deref(),
        Some("203.0.113.7, 10.0.0.2, 127.0.0.1"),
        "{out}"
    );
    assert_eq!(seen(&out, "x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(
        seen(&out, "x-forwarded-host").as_deref(),
        Some("www.app.test")
    );

    let other = TestProxy::start(ProxyConfig {
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        ..test_config()
    })
    .await;
    other.route_all("app", 1, vec![other.backend("a-1", a.addr, "app", 1)]);
    let out = send(other.addr).await;
    assert_eq!(
        seen(&out, "x-forwarded-for").as_deref(),
        Some("127.0.0.1"),
        "{out}"
    );
    assert_eq!(seen(&out, "x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(seen(&out, "x-forwarded-host").as_deref(), Some("app.test"));
}

#[tokio::test]
async fn request_id_generated_when_missing_or_invalid() {
    let a = origin("a").run().await;
    let p = TestProxy::start(test_config()).await;
    p.route_all("app", 1, vec![p.backend("a-1", a.addr, "app", 1)]);
    let c = client();
    let got = get(&c, &p.url("/")).await;
    let id = got.header("x-request-id").to_owned();
    assert!(is_hex_id(&id), "{id}");
    assert_eq!(got.seen("x-request-id"), Some(id.as_str()));
    let again = get(&c, &p.url("/")).await;
    assert_ne!(again.header("x-request-id"), id);

    for bad in ["has space", "a/b", &"x".repeat(129)] {
        let req = Request::get(p.url("/"))
            .header("x-request-id", bad)
            .body(Full::default())
            .unwrap();
        let got = send(&c, req).await.unwrap();
        assert!(
            is_hex_id(got.header("x-request-id")),
            "{bad}: {:?}",
            got.headers
        );
    }
    let good = "x".repeat(128);
    let req = Request::get(p.url("/"))
        .header("x-request-id", &good)
        .body(Full::default())
        .unwrap();
    let got = send(&c, req).await.unwrap();
    assert_eq!(got.header("x-request-id"), good);
    assert_eq!(got.seen("x-request-id"), Some(good.as_str()));
}

#[tokio::test]
async fn weighted_split_between_releases() {
    let old = origin("old").run().await;
    let new = origin("new").run().await;
    let p = TestProxy::start(test_config()).await;
    let bo = p.backend("old-1", old.addr, "app", 1);
    let bn = p.backend("new-1", new.addr, "app", 2);
    let c = client();

    p.proxy.swap(RoutingTable::new(vec![route(
        "app",
        None,
        "/",
        groups(vec![(1, 0, vec![bo.clone()]), (2, 100, vec![bn.clone()])]),
    )]));
    for _ in 0..200 {
        assert_eq!(get(&c, &p.url("/")).await.origin(), "new");
    }
    assert_eq!(old.hits(), 0);

    p.proxy.swap(RoutingTable::new(vec![route(
        "app",
        None,
        "/",
        groups(vec![(1, 50, vec![bo]), (2, 50, vec![bn])]),
    )]));
    let (h_old, h_new) = (old.hits(), new.hits());
    for _ in 0..1000 {
        assert_eq!(get(&c, &p.url("/")).await.status, 200);
    }
    let (d_old, d_new) = (old.hits() - h_old, new.hits() - h_new);
    assert_eq!(d_old + d_new, 1000);
    assert!(
        (400..=600).contains(&d_old),
        "old got {d_old}, new got {d_new}"
    );
}

#[tokio::test]
async fn round_robin_within_a_group() {
    let os = [
        origin("a").run().await,
        origin("b").run().await,
        origin("c").run().await,
    ];
    let p = TestProxy::start(test_config()).await;
    let backends = os
        .iter()
        .enumerate()
        .map(|(i, o)| p.backend(&format!("i-{i}"), o.addr, "app", 1))
        .collect();
    p.route_all("app", 1, backends);
    let c = client();
    for _ in 0..300 {
        get(&c, &p.url("/")).await;
    }
    assert_eq!(
        os.iter().map(Origin::hits).collect::<Vec<_>>(),
        [100, 100, 100]
    );
}

/// Keep-alive and fresh-connection clients hammer the proxy while the table
/// flips between origin A and B 50 times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_under_load_loses_nothing() {
    let a = origin("A").run().await;
    let b = origin("B").run().await;
    let p = TestProxy::start(test_config()).await;
    let ba = p.backend("a-1", a.addr, "app", 1);
    let bb = p.backend("b-1", b.addr, "app", 2);
    let table_for = |generation: usize| {
        let (rel, be) = if generation.is_multiple_of(2) {
            (1, ba.clone())
        } else {
            (2, bb.clone())
        };
        RoutingTable::new(vec![route(
            "app",
            None,
            "/",
            BackendSet::single(rel, vec![be]),
        )])
    };
    let expected = |generation: usize| {
        if generation.is_multiple_of(2) {
            "A"
        } else {
            "B"
        }
    };
    p.proxy.swap(table_for(0));

    let generation = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let keep_alive = i % 2 == 0;
        let (generation, stop, failures, total) = (
            generation.clone(),
            stop.clone(),
            failures.clone(),
            total.clone(),
        );
        let url = p.url("/");
        tasks.push(tokio::spawn(async move {
            let c = if keep_alive {
                client()
            } else {
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .pool_max_idle_per_host(0)
                    .build_http()
            };
            let mut mismatches = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let before = generation.load(Ordering::SeqCst);
                let r = send(
                    &c,
                    Request::get(&url).body(Full::<Bytes>::default()).unwrap(),
                )
                .await;
                let after = generation.load(Ordering::SeqCst);
                total.fetch_add(1, Ordering::SeqCst);
                match r {
                    Ok(got) if got.status == 200 => {
                        if before == after && got.origin() != expected(before) {
                            mismatches.push((before, got.origin().to_owned()));
                        }
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            mismatches
        }));
    }
    let c = client();
    for g in 1..=50 {
        tokio::time::sleep(Duration::from_millis(15)).await;
        p.proxy.swap(table_for(g));
        generation.store(g, Ordering::SeqCst);
        // A request started after the swap goes to the new origin.
        assert_eq!(
            get(&c, &p.url("/")).await.origin(),
            expected(g),
            "after swap {g}"
        );
    }
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let mismatches = t.await.unwrap();
        assert!(
            mismatches.is_empty(),
            "requests went to the old origin after a swap: {mismatches:?}"
        );
    }
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "of {} requests",
        total.load(Ordering::SeqCst)
    );
    assert!(
        total.load(Ordering::SeqCst) > 100,
        "load too small: {}",
        total.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn drain_waits_for_in_flight_then_closes_idle_connections() {
    let a = origin("a").run().await;
    let p = TestProxy::start(test_config()).await;
    let be = p.backend("a-1", a.addr, "app", 1);
    p.route_all("app", 1, vec![be.clone()]);
    let c = client();
    assert_eq!(get(&c, &p.url("/")).await.status, 200);
    assert_eventually!(
        be.idle_connections() == 1,
        "one pooled connection, got {}",
        be.idle_connections()
    );

    let slow = tokio::spawn({
        let (c, url) = (c.clone(), p.url("/?sleep=300"));
        async move { get(&c, &url).await }
    });
    assert_eventually!(be.in_flight() == 1, "slow request in flight");
    p.proxy.swap(RoutingTable::default());
    let report = drain(std::slice::from_ref(&be), Duration::from_secs(5)).await;
    assert!(report.completed, "{report:?}");
    assert_eq!(report.abandoned, 0);
    assert!(report.waited >= Duration::from_millis(150), "{report:?}");
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(be.in_flight(), 0);
    assert_eq!(
        be.idle_connections(),
        0,
        "drain closes idle upstream connections"
    );
}

#[tokio::test]
async fn drain_reports_abandoned_requests_after_timeout() {
    let a = origin("a").run().await;
    let p = TestProxy::start(test_config()).await;
    let be = p.backend("a-1", a.addr, "app", 1);
    p.route_all("app", 1, vec![be.clone()]);
    let c = client();
    let slow = tokio::spawn({
        let (c, url) = (c.clone(), p.url("/?sleep=1000"));
        async move { get(&c, &url).await }
    });
    assert_eventually!(be.in_flight() == 1, "slow request in flight");
    p.proxy.swap(RoutingTable::default());
    let report = drain(std::slice::from_ref(&be), Duration::from_millis(100)).await;
    assert!(!report.completed, "{report:?}");
    assert_eq!(report.abandoned, 1);
    assert!(
        report.waited >= Duration::from_millis(100) && report.waited < Duration::from_millis(900),
        "{report:?}"
    );
    // The abandoned request still finishes; nothing is cut.
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eventually!(be.in_flight() == 0, "in flight back to 0");
    assert_eq!(drain(&[be], Duration::from_millis(100)).await.abandoned, 0);
}

#[tokio::test]
async fn body_limits_give_413() {
    let a = origin("a").run().await;
    let p = TestProxy::start(ProxyConfig {
        max_body_bytes: 1000,
        ..test_config()
    })
    .await;
    p.route_all("app", 1, vec![p.backend("a-1", a.addr, "app", 1)]);
    let c = client();

    let req = Request::post(p.url("/"))
        .body(Full::new(Bytes::from(vec![b'x'; 1000])))
        .unwrap();
    let got = send(&c, req).await.unwrap();
    assert_eq!(got.status, 200);
    assert!(got.body.contains("body-bytes=1000"), "{}", got.body);
    let hits = a.hits();

    let req = Request::post(p.url("/"))
        .body(Full::new(Bytes::from(vec![b'x'; 1001])))
        .unwrap();
    assert_page(&send(&c, req).await.unwrap(), 413);
    assert_eq!(
        a.hits(),
        hits,
        "413 by Content-Length before contacting the origin"
    );

    // Chunked: no length up front, the stream is cut at the limit.
    let mut chunked =
        String::from("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..3 {
        chunked.push_str(&format!("{:x}\r\n{}\r\n", 600, "y".repeat(600)));
    }
    chunked.push_str("0\r\n\r\n");
    let out = raw(p.addr, chunked.as_bytes(), Duration::from_secs(5)).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
}

#[tokio::test]
async fn oversized_head_gives_431() {
    let a = origin("a").run().await;
    let p = TestProxy::start(ProxyConfig {
        max_header_bytes: 16 * 1024,
        ..test_config()
    })
    .await;
    p.route_all("app", 1, vec![p.backend("a-1", a.addr, "app", 1)]);
    let req = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20 * 1024)
    );
    let out = raw(p.addr, req.as_bytes(), Duration::from_secs(5)).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    let ok = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "b".repeat(8 * 1024)
    );
    let out = raw(p.addr, ok.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "{}",
        &out[..out.len().min(200)]
    );
    assert_eq!(a.hits(), 1);
}

#[tokio::test]
async fn slow_header_timeout_closes_the_connection() {
    let p = TestProxy::start(ProxyConfig {
        header_read_timeout: Duration::from_millis(300),
        ..test_config()
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    assert!(r.is_ok(), "connection still open after 3s");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    let out = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 408"), "{out}");
}

#[tokio::test]
async fn request_smuggling_shapes_are_refused() {
    let a = origin("a").run().await;
    let p = TestProxy::start(test_config()).await;
    p.route_all("app", 1, vec![p.backend("a-1", a.addr, "app", 1)]);
    let bad = [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ];
    for req in bad {
        let out = raw(p.addr, req.as_bytes(), Duration::from_secs(5)).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{req:?} → {out:?}");
    }
    // Both lengths: hyper frames by Transfer-Encoding alone (RFC 9112 §6.1),
    // forwards a clean chunked request and closes the connection, so the
    // bytes after the chunked body are never read as a second request.
    for req in [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n\
         0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let out = raw(p.addr, req.as_bytes(), Duration::from_secs(5)).await;
        assert!(!out.contains("path=/smuggled"), "{out}");
        assert_eq!(
            out.matches("HTTP/1.1 ").count(),
            1,
            "exactly one response, then close: {out}"
        );
    }
}

#[tokio::test]
async fn connect_refused_is_retried_on_another_instance() {
    let a = origin("a").run().await;
    let p = TestProxy::start(test_config()).await;
    let dead = p.backend("dead-1", dead_addr().await, "app", 4);
    let live = p.backend("live-1", a.addr, "app", 4);
    p.route_all("app", 4, vec![dead.clone(), live.clone()]);
    let c = client();
    for i in 0..10 {
        let got = get(&c, &p.url("/")).await;
        assert_eq!((got.status, got.origin()), (200, "a"), "request {i}");
    }
    assert_eq!(a.hits(), 10);
    let m = p.metrics();
    assert!(
        m.contains(r#"wharf_upstream_errors_total{app="app",release="4",kind="connect"} 5"#),
        "{m}"
    );

    // A request with a body may already be (partly) sent: no retry.
    let mut codes = Vec::new();
    for _ in 0..2 {
        let req = Request::post(p.url("/"))
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap();
        codes.push(send(&c, req).await.unwrap().status);
    }
    codes.sort();
    assert_eq!(codes, [200, 502]);
    assert_eventually!(
        dead.in_flight() == 0 && live.in_flight() == 0,
        "in flight settles"
    );
}

#[tokio::test]
async fn metrics_series() {
    let a = origin("a").run().await;
    let p = TestProxy::start(test_config()).await;
    let be = p.backend("a-1", a.addr, "shop", 7);
    p.proxy.swap(RoutingTable::new(vec![
        route(
            "shop",
            Some("shop.test"),
            "/",
            BackendSet::single(7, vec![be.clone()]),
        ),
        route("empty", Some("empty.test"), "/", BackendSet::default()),
    ]));
    let c = client();
    get_host(&c, &p.url("/"), "shop.test").await;
    get_host(&c, &p.url("/?status=503"), "shop.test").await;
    get_host(&c, &p.url("/"), "nope.test").await;
    get_host(&c, &p.url("/"), "empty.test").await;
    assert_eventually!(be.in_flight() == 0, "in flight settles");
    let m = p.metrics();
    for line in [
        r#"wharf_http_requests_total{app="shop",release="7",class="2xx"} 1"#,
        r#"wharf_http_requests_total{app="shop",release="7",class="5xx"} 1"#,
        r#"wharf_http_requests_total{app="none",release="none",class="4xx"} 1"#,
        r#"wharf_http_requests_total{app="empty",release="none",class="5xx"} 1"#,
        r#"wharf_http_request_duration_seconds_count{app="shop",release="7"} 2"#,
        r#"wharf_http_request_duration_seconds_bucket{le="10.0",app="shop",release="7"} 2"#,
        r#"wharf_http_requests_in_flight{app="shop"} 0"#,
        "# TYPE wharf_upstream_errors counter",
        "# TYPE wharf_http_request_duration_seconds histogram",
    ] {
        assert!(m.contains(line), "missing {line}\n{m}");
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let a = origin("a").run().await;
    let p = TestProxy::start(test_config()).await;
    p.route_all("app", 1, vec![p.backend("a-1", a.addr, "app", 1)]);
    let addr = p.addr;
    let c = client();
    let slow = tokio::spawn({
        let (c, url) = (c.clone(), p.url("/?sleep=300"));
        async move { get(&c, &url).await }
    });
    assert_eventually!(a.hits() == 1, "slow request reached the origin");
    let started = Instant::now();
    p.shutdown().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "returned before the request finished"
    );
    let got = slow.await.unwrap();
    assert_eq!(got.status, 200);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting"
    );
}
