//! The access log: one `wharf::access` event per request with the documented
//! fields. Its own test binary because it installs a global subscriber.

#![allow(clippy::unwrap_used)]

#[path = "it/support.rs"]
#[allow(dead_code)]
mod support;

use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::Request;

use support::*;

#[tokio::test]
async fn access_log_event_per_request() {
    use std::sync::Mutex;
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let w = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || w.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    // Global (own test binary): tracing caches callsite interest process-wide,
    // which makes thread-scoped subscribers flaky next to other tests.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let a = origin("a").run().await;
    let p = TestProxy::start(test_config()).await;
    let be = p.backend("a-1", a.addr, "shop", 3);
    p.route_all("shop", 3, vec![be.clone()]);
    let c = client();
    // Tracing caches callsite interest process-wide; a test thread without a
    // subscriber can race ours on first use, so allow a few attempts.
    let mut text = String::new();
    for _ in 0..20 {
        let req = Request::get(p.url("/x/y?q=1"))
            .header("x-request-id", "log-me")
            .body(Full::default())
            .unwrap();
        send(&c, req).await.unwrap();
        assert_eventually!(be.in_flight() == 0, "settled");
        text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        if text.contains("wharf::access") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let line = text
        .lines()
        .find(|l| l.contains("wharf::access"))
        .expect(&text);
    let v: serde_json_lite::Value = serde_json_lite::parse(line);
    for (k, want) in [
        ("request_id", "\"log-me\""),
        ("app", "\"shop\""),
        ("process", "\"web\""),
        ("release", "3"),
        ("instance", "\"a-1\""),
        ("method", "\"GET\""),
        ("path", "\"/x/y\""),
        ("status", "200"),
        ("client", "\"127.0.0.1\""),
    ] {
        assert_eq!(v.get(k).map(String::as_str), Some(want), "{k} in {line}");
    }
    for k in ["duration_ms", "upstream_ms", "bytes", "host"] {
        assert!(v.contains_key(k), "{k} in {line}");
    }
}

/// Just enough JSON to read the flat `fields` object of a tracing line.
mod serde_json_lite {
    use std::collections::HashMap;
    pub type Value = HashMap<String, String>;
    pub fn parse(line: &str) -> Value {
        let start = line.find("\"fields\":{").map(|i| i + 10).unwrap_or(0);
        let rest = &line[start..];
        let end = rest.find('}').unwrap_or(rest.len());
        let mut out = HashMap::new();
        for kv in rest[..end].split(",\"") {
            if let Some((k, v)) = kv.split_once("\":") {
                out.insert(k.trim_start_matches('"').to_owned(), v.to_owned());
            }
        }
        out
    }
}
