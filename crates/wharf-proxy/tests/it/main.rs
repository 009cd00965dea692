//! Integration tests of wharf-proxy, all in-process on 127.0.0.1.

// Helpers outside #[test] fns panic on setup failure on purpose.
#![allow(clippy::unwrap_used)]

mod support;

mod canary;
mod edge;
mod health;
mod routing;
mod tls;
mod tunnels;
