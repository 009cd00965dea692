//! Health probes against real sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wharf_proxy::health::{HealthSpec, monitor, probe, wait_healthy, wait_healthy_at_interval};

use crate::assert_eventually;
use crate::support::*;

fn spec(threshold: u32) -> HealthSpec {
    HealthSpec {
        path: "/health".into(),
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(300),
        threshold,
    }
}

/// A server answering with a status that the test can change; records the
/// last request's Host and User-Agent.
struct Switch {
    addr: std::net::SocketAddr,
    status: Arc<AtomicU16>,
    probes: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<String>>,
}

async fn switch(status: u16) -> Switch {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let st = Arc::new(AtomicU16::new(status));
    let probes = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let (s2, p2, seen2) = (st.clone(), probes.clone(), seen.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let (st, probes, seen) = (s2.clone(), p2.clone(), seen2.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        probes.fetch_add(1, Ordering::SeqCst);
                        let h = |n| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned()
                        };
                        *seen.lock().unwrap() =
                            format!("{} {} {}", req.uri().path(), h("host"), h("user-agent"));
                        let status = st.load(Ordering::SeqCst);
                        async move {
                            if status == 0 {
                                tokio::time::sleep(Duration::from_secs(5)).await;
                            }
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status.max(200))
                                    .body(http_body_util::Full::new(bytes::Bytes::from_static(
                                        b"ok",
                                    )))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Switch {
        addr,
        status: st,
        probes,
        seen,
    }
}

#[tokio::test]
async fn probe_outcomes() {
    let ok = switch(204).await;
    assert_eq!(probe(ok.addr, &spec(1)).await, Ok(()));
    assert_eq!(*ok.seen.lock().unwrap(), "/health 127.0.0.1 wharf-health");
    ok.status.store(302, Ordering::SeqCst);
    assert_eq!(probe(ok.addr, &spec(1)).await, Ok(()));
    ok.status.store(500, Ordering::SeqCst);
    assert_eq!(probe(ok.addr, &spec(1)).await, Err("status 500".into()));
    ok.status.store(404, Ordering::SeqCst);
    assert_eq!(probe(ok.addr, &spec(1)).await, Err("status 404".into()));

    assert_eq!(
        probe(dead_addr().await, &spec(1)).await,
        Err("connection refused".into())
    );

    let hang = switch(0).await;
    let started = Instant::now();
    assert_eq!(
        probe(hang.addr, &spec(1)).await,
        Err("timed out after 300ms".into())
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    let two_s = HealthSpec {
        timeout: Duration::from_secs(2),
        ..spec(1)
    };
    let _ = two_s; // formatting of whole seconds is covered by the unit of wait_healthy below
}

#[tokio::test]
async fn wait_healthy_needs_consecutive_passes() {
    let s = switch(200).await;
    let started = Instant::now();
    wait_healthy(
        s.addr,
        &HealthSpec {
            interval: Duration::from_secs(10),
            ..spec(3)
        },
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(s.probes.load(Ordering::SeqCst), 3);
    // min(interval, 100ms) between probes, not the 10 s interval.
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
}

/// A starting instance that keeps failing is probed fast at first, then
/// at its configured interval: counted by the instance itself.
#[tokio::test]
async fn probes_of_a_failing_instance_back_off_to_the_interval() {
    let s = switch(500).await;
    let every_second = HealthSpec {
        interval: Duration::from_secs(1),
        ..spec(1)
    };
    let started = Instant::now();
    let err = wait_healthy(s.addr, &every_second, Duration::from_millis(4200))
        .await
        .unwrap_err();
    // At 0, 0.1, 0.3, 0.7, 1.5, 2.5 and 3.5 s: seven probes where a fixed
    // 100 ms pace would have made forty-two.
    let probes = s.probes.load(Ordering::SeqCst);
    assert!(
        (6..=8).contains(&probes),
        "{probes} probes in {:?}",
        started.elapsed()
    );
    assert_eq!(err.attempts as usize, probes);

    // Readmitting an instance that failed before: at the interval from the start.
    let s = switch(500).await;
    wait_healthy_at_interval(s.addr, &every_second, Duration::from_millis(2500))
        .await
        .unwrap_err();
    let probes = s.probes.load(Ordering::SeqCst);
    assert!((2..=3).contains(&probes), "{probes} probes");
}

#[tokio::test]
async fn wait_healthy_times_out_with_last_error() {
    let s = switch(503).await;
    let err = wait_healthy(s.addr, &spec(2), Duration::from_millis(400))
        .await
        .unwrap_err();
    assert_eq!(err.last_error, "status 503");
    assert_eq!(err.path, "/health");
    assert_eq!(err.addr, s.addr);
    assert!(err.attempts >= 3, "{err:?}");
    assert!(err.to_string().starts_with("status 503 (after"), "{err}");

    let dead = dead_addr().await;
    let err = wait_healthy(dead, &spec(1), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(err.last_error, "connection refused");
}

#[tokio::test]
async fn wait_healthy_succeeds_once_the_app_comes_up() {
    let s = switch(500).await;
    let addr = s.addr;
    let status = s.status.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        status.store(200, Ordering::SeqCst);
    });
    wait_healthy(addr, &spec(2), Duration::from_secs(3))
        .await
        .unwrap();
}

#[tokio::test]
async fn monitor_flips_after_threshold_and_stops_when_dropped() {
    let s = switch(200).await;
    let rx = monitor(s.addr, spec(2));
    assert!(*rx.borrow());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(*rx.borrow(), "stays healthy while passing");

    s.status.store(500, Ordering::SeqCst);
    let before = s.probes.load(Ordering::SeqCst);
    assert_eventually!(!*rx.borrow(), "goes unhealthy");
    assert!(
        s.probes.load(Ordering::SeqCst) >= before + 2,
        "needs 2 consecutive failures"
    );

    s.status.store(200, Ordering::SeqCst);
    assert_eventually!(*rx.borrow(), "healthy again");

    drop(rx);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let after_drop = s.probes.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        s.probes.load(Ordering::SeqCst) <= after_drop + 1,
        "probing stops when receivers are gone"
    );
}

/// The error of a deploy's health wait names what the instance did, even
/// when the deadline cuts the last probe short (not "timed out after 0ms").
#[tokio::test]
async fn a_probe_cut_by_the_deadline_does_not_hide_the_real_failure() {
    let origin = origin("sick").run().await;
    let slow_503 = HealthSpec {
        path: "/up?sleep=150&status=503".into(),
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(1),
        threshold: 1,
    };
    // Probes start at about 0, 150 and 300 ms; the third is cut at 400 ms.
    let err = wait_healthy(origin.addr, &slow_503, Duration::from_millis(400))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("status 503 "), "{err}");
}
