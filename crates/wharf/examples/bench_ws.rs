//! WebSocket echo benchmark client (not a test): CONNS sockets to one URL
//! (the hello example's `/ws`, directly or through wharf), each sending a
//! SIZE-byte text message and waiting for its echo, back to back, for
//! SECONDS. Prints one JSON line: messages echoed, messages/s, and the
//! round trip's p50/p99 in microseconds.
//!
//! Usage: `bench_ws <ws-url> [conns] [seconds] [size]` (see `bench/ws/run.sh`).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(url) = args.first().cloned() else {
        eprintln!("usage: bench_ws <ws-url> [conns] [seconds] [size]");
        std::process::exit(2);
    };
    let arg = |i: usize, default: u64| {
        args.get(i)
            .map(|v| v.parse().expect("a number"))
            .unwrap_or(default)
    };
    let (conns, seconds, size) = (arg(1, 32), arg(2, 10), arg(3, 64));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let samples = rt.block_on(async move {
        let until = Instant::now() + Duration::from_secs(seconds);
        let payload = "x".repeat(size as usize);
        let tasks: Vec<_> = (0..conns)
            .map(|_| {
                let (url, payload) = (url.clone(), payload.clone());
                tokio::spawn(async move {
                    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
                    // The hello app greets first.
                    let _ = ws.next().await;
                    let mut rtts = Vec::new();
                    while Instant::now() < until {
                        let sent = Instant::now();
                        ws.send(Message::text(payload.clone())).await.unwrap();
                        match ws.next().await {
                            Some(Ok(m)) if m.is_text() => {
                                rtts.push(sent.elapsed().as_micros() as u64);
                            }
                            other => panic!("no echo: {other:?}"),
                        }
                    }
                    let _ = ws.close(None).await;
                    rtts
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let mut rtts = samples;
    rtts.sort_unstable();
    let pct = |p: f64| rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)];
    println!(
        "{{\"messages\": {}, \"per_sec\": {:.0}, \"p50_us\": {}, \"p99_us\": {}}}",
        rtts.len(),
        rtts.len() as f64 / seconds as f64,
        pct(0.50),
        pct(0.99)
    );
}
