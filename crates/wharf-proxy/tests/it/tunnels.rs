//! Upgrade tunnels (WebSockets through the proxy with a real client and
//! server crate), streamed responses, and per-route limits.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use wharf_proxy::{BackendSet, RouteOptions, RoutingTable, drain};

use crate::assert_eventually;
use crate::support::*;

/// A WebSocket server that greets each connection with `origin=NAME`, then
/// echoes every message; returns its address.
async fn ws_origin(name: &'static str) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                let _ = ws.send(Message::text(format!("origin={name}"))).await;
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() || m.is_binary() {
                        if ws.send(m).await.is_err() {
                            return;
                        }
                    } else if m.is_close() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects through the proxy; returns the socket and the greeting.
async fn ws_connect(p: &TestProxy) -> (Ws, String) {
    let url = format!("ws://{}/ws", p.addr);
    let (mut ws, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().contains_key("x-request-id"), "{resp:?}");
    let hello = ws.next().await.unwrap().unwrap().into_text().unwrap();
    (ws, hello.to_string())
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let addr = ws_origin("a").await;
    let p = TestProxy::start(test_config()).await;
    let b = p.backend("a-1", addr, "app", 1);
    p.route_all("app", 1, vec![b.clone()]);
    let (mut ws, hello) = ws_connect(&p).await;
    assert_eq!(hello, "origin=a");
    ws.send(Message::text("ahoy")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("ahoy"));
    ws.send(Message::binary(vec![0u8, 159, 255])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![0u8, 159, 255])
    );
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
    // Open, counted in flight for its backend and in the gauge.
    assert_eq!(b.in_flight(), 1);
    assert!(
        p.metrics()
            .contains("wharf_tunnels_open{app=\"app\",release=\"1\"} 1"),
        "{}",
        p.metrics()
    );
    // The handshake counted as a request (1xx).
    assert!(p.metrics().contains("class=\"1xx\"} 1"), "{}", p.metrics());
    ws.close(None).await.unwrap();
    drop(ws);
    assert_eventually!(b.in_flight() == 0, "tunnel still counted in flight");
    assert_eventually!(
        p.metrics()
            .contains("wharf_tunnels_open{app=\"app\",release=\"1\"} 0"),
        "gauge not back to 0"
    );
}

/// A drain waits for the old release's tunnels up to its timeout, then
/// closes them; a client that reconnects lands on the new release.
#[tokio::test]
async fn drain_closes_tunnels_after_its_timeout_and_clients_reconnect_to_the_new_release() {
    let old_addr = ws_origin("old").await;
    let new_addr = ws_origin("new").await;
    let p = TestProxy::start(test_config()).await;
    let old = p.backend("old-1", old_addr, "app", 1);
    p.route_all("app", 1, vec![old.clone()]);
    let (mut ws, hello) = ws_connect(&p).await;
    assert_eq!(hello, "origin=old");

    // The switch: release 2 takes new connections, release 1 drains.
    let new = p.backend("new-1", new_addr, "app", 2);
    p.route_all("app", 2, vec![new]);
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("still here"),
        "an open tunnel keeps working after the switch"
    );
    let report = drain(std::slice::from_ref(&old), Duration::from_millis(300)).await;
    assert!(!report.completed && report.abandoned == 1, "{report:?}");
    // The old socket is closed by the proxy...
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the drained tunnel was not closed");
    assert_eventually!(old.in_flight() == 0, "drained tunnel still in flight");
    // ...and a reconnect reaches release 2.
    let (_ws, hello) = ws_connect(&p).await;
    assert_eq!(hello, "origin=new");
}

/// An oversized WebSocket frame is only bytes to the proxy: the instance's
/// WebSocket library refuses it, the proxy neither panics nor stops serving.
#[tokio::test]
async fn an_oversized_frame_breaks_only_its_own_tunnel() {
    let addr = ws_origin("a").await;
    let p = TestProxy::start(test_config()).await;
    p.route_all("app", 1, vec![p.backend("a-1", addr, "app", 1)]);
    let (mut ws, _) = ws_connect(&p).await;
    // tungstenite's default limit is 64 MiB per message and 16 MiB per
    // frame; the client's own limit is lifted for this one.
    let huge = Message::binary(vec![7u8; 20 * 1024 * 1024]);
    let _ = ws.send(huge).await;
    let answer = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
    assert!(
        !matches!(answer, Ok(Some(Ok(Message::Binary(_))))),
        "the origin echoed a frame over its limit"
    );
    let (mut other, hello) = ws_connect(&p).await;
    assert_eq!(hello, "origin=a");
    other.send(Message::text("fine")).await.unwrap();
    assert_eq!(other.next().await.unwrap().unwrap(), Message::text("fine"));
}

/// A body fed by the test, chunk by chunk.
struct ChanBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChanBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// An origin whose response (`text/event-stream`) sends what the test
/// puts in the returned channel, ending when it is dropped.
async fn streaming_origin() -> (std::net::SocketAddr, mpsc::Sender<Bytes>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let rx = rx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let rx = rx.clone();
                    async move {
                        let rx = rx.lock().await.take().unwrap();
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "text/event-stream")
                                .body(ChanBody(rx))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, tx)
}

#[tokio::test]
async fn a_streamed_response_reaches_the_client_before_it_ends() {
    let (addr, tx) = streaming_origin().await;
    let p = TestProxy::start(test_config()).await;
    p.route_all("app", 1, vec![p.backend("s-1", addr, "app", 1)]);
    let resp = client()
        .request(
            hyper::Request::get(p.url("/events"))
                .body(http_body_util::Full::<Bytes>::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    tx.send(Bytes::from_static(b"data: one\n\n")).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first event did not arrive while the stream was open")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "data: one\n\n");
    tx.send(Bytes::from_static(b"data: two\n\n")).await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.into_data().unwrap(), "data: two\n\n");
    drop(tx);
}

#[tokio::test]
async fn routes_set_their_own_body_limit_and_timeout() {
    let a = origin("a").run().await;
    let p = TestProxy::start(test_config()).await;
    let b = p.backend("a-1", a.addr, "app", 1);
    let mut small = route(
        "app",
        Some("small.test"),
        "/",
        BackendSet::single(1, vec![b.clone()]),
    );
    small.options = RouteOptions {
        max_body: Some(1024),
        timeout: Some(Duration::from_millis(200)),
        ..RouteOptions::default()
    };
    let default = route("app", None, "/", BackendSet::single(1, vec![b]));
    p.proxy.swap(RoutingTable::new(vec![small, default]));
    let c = client();
    let post = |host: &str, len: usize| {
        hyper::Request::post(p.url("/upload"))
            .header("host", host)
            .body(http_body_util::Full::new(Bytes::from(vec![b'x'; len])))
            .unwrap()
    };
    assert_eq!(
        send(&c, post("small.test", 2048)).await.unwrap().status,
        413
    );
    assert_eq!(send(&c, post("small.test", 512)).await.unwrap().status, 200);
    // The default takes ordinary uploads (the old fixed limit was 16 MiB).
    let got = send(&c, post("big.test", 20 * 1024 * 1024)).await.unwrap();
    assert_eq!(got.status, 200);
    assert!(got.body.contains("body-bytes=20971520"), "{}", got.body);
    // The route's timeout, not the proxy's 5 s.
    let slow = get_host(&c, &p.url("/?sleep=600"), "small.test").await;
    assert_eq!(slow.status, 504);
    assert_eq!(
        get_host(&c, &p.url("/?sleep=600"), "big.test").await.status,
        200
    );
}
