//! A dependency of the app under test (its "database"), standing in for
//! the `hello kv` store: it answers `GET /up` with a status the test sets
//! and counts those requests, so a test can see how often the app's own
//! health check (which asks it, with `HELLO_UP_NEEDS_KV=1`) was probed.

#![allow(clippy::unwrap_used, dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};

pub struct Upstream {
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
    ups: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    /// Starts answering `GET /up` with `status`.
    pub fn start(status: u16) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (st, ups, stop) = (
            Arc::new(AtomicU16::new(status)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (st2, ups2, stop2) = (st.clone(), ups.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let (st, ups) = (st2.clone(), ups2.clone());
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    if head.starts_with(b"GET /up ") {
                        ups.fetch_add(1, Ordering::SeqCst);
                    }
                    let status = st.load(Ordering::SeqCst);
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    );
                });
            }
        });
        Upstream {
            addr,
            status: st,
            ups,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// `GET /up` requests seen so far.
    pub fn ups(&self) -> usize {
        self.ups.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `stop`.
        let _ = std::net::TcpStream::connect(self.addr);
    }
}
