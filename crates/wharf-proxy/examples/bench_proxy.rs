//! Benchmark harness: runs the wharf proxy on `127.0.0.1:PORT` (0 = any)
//! routing every request to one backend, access log off, and prints the
//! bound port on stdout. Used by `bench/proxy/run.sh`.
//!
//! Usage: `bench_proxy <backend-addr> [port] [worker-threads]`

use std::net::SocketAddr;

use prometheus_client::registry::Registry;
use wharf_proxy::{BackendSet, Proxy, ProxyConfig, Route, RoutingTable};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let backend: SocketAddr = args
        .next()
        .ok_or("usage: bench_proxy <backend-addr> [port] [threads]")?
        .parse()?;
    let port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(0);
    let threads: usize = args.next().map(|t| t.parse()).transpose()?.unwrap_or(1);
    // One worker: a current-thread runtime (no work-stealing bookkeeping),
    // like one nginx worker process.
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    rt.block_on(async move {
        let mut registry = Registry::default();
        let proxy = Proxy::new(
            ProxyConfig {
                access_log: false,
                ..ProxyConfig::default()
            },
            &mut registry,
        );
        let b = proxy.backend("bench-1", backend, "bench", 1);
        proxy.swap(RoutingTable::new(vec![Route {
            app: "bench".into(),
            process: "web".into(),
            host: None,
            path_prefix: "/".into(),
            backends: BackendSet::single(1, vec![b]),
            unavailable: None,
            options: Default::default(),
        }]));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("{}", listener.local_addr()?.port());
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        proxy.serve(listener, shutdown).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
