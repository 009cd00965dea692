//! kamal-proxy settings (`proxy`, app-wide or per role) as a process's
//! `port`, `http` (hosts, path, TLS, body limit, timeout) and `health`.

use crate::common::{Values, join_key};
use crate::model::{Health, Http, Process, Tls};
use crate::yaml::Node;

use super::Ctx;

/// What a `proxy` section says; a role's own `proxy` is laid over the
/// app-wide one.
#[derive(Debug, Default)]
pub struct ProxySettings {
    hosts: Option<Vec<String>>,
    port: Option<u16>,
    path: Option<String>,
    tls: Option<bool>,
    max_body: Option<String>,
    timeout: Option<String>,
    health_path: Option<String>,
    interval: Option<String>,
    health_timeout: Option<String>,
}

impl ProxySettings {
    pub fn apply(&self, p: &mut Process) {
        if let Some(port) = self.port {
            p.port = Some(port);
        }
        if let Some(http) = p.http.as_mut() {
            if let Some(hosts) = &self.hosts {
                http.hosts.clone_from(hosts);
            }
            if let Some(path) = &self.path {
                http.path.clone_from(path);
            }
            if let Some(tls) = self.tls {
                http.tls = tls.then_some(Tls::Acme);
            }
            if self.max_body.is_some() {
                http.max_body.clone_from(&self.max_body);
            }
            if self.timeout.is_some() {
                http.timeout.clone_from(&self.timeout);
            }
            // A certificate is for a host name: without one, no TLS.
            if http.hosts.is_empty() {
                http.tls = None;
            }
        }
        if let Some(health) = p.health.as_mut() {
            if let Some(path) = &self.health_path {
                health.path.clone_from(path);
            }
            if self.interval.is_some() {
                health.interval.clone_from(&self.interval);
            }
            if self.health_timeout.is_some() {
                health.timeout.clone_from(&self.health_timeout);
            }
        }
    }
}

/// The routed defaults of a process behind kamal-proxy.
pub fn proxied(p: &mut Process) {
    p.port = Some(80);
    p.http = Some(Http {
        path: "/".into(),
        ..Http::default()
    });
    p.health = Some(Health {
        path: "/up".into(),
        ..Health::default()
    });
}

impl Ctx {
    /// kamal-proxy settings, read (and warned about) once.
    pub(super) fn proxy(&mut self, key: &str, node: &Node) -> ProxySettings {
        let mut s = ProxySettings::default();
        let Some(map) = node.as_map() else {
            self.w.add(
                node.pos,
                key,
                format!(
                    "expected a mapping, found {}; not carried over, so the proxy routes any host at `/` to port 80",
                    node.describe()
                ),
            );
            return s;
        };
        for e in map {
            let k = join_key(key, &e.key);
            let v = &e.value;
            match e.key.as_str() {
                "host" => {
                    if let Some(h) = self.lit(v, &k) {
                        s.hosts = Some(hosts(h.split(',').map(str::to_owned)));
                    }
                }
                "hosts" => {
                    let items: Vec<String> = self
                        .w
                        .seq(v, &k)
                        .iter()
                        .enumerate()
                        .filter_map(|(i, h)| self.lit(h, &format!("{k}[{i}]")))
                        .collect();
                    s.hosts = Some(hosts(items.into_iter()));
                }
                "app_port" => s.port = self.int(v, &k, 1, 65535).map(|n| n as u16),
                "path_prefix" => {
                    s.path = self
                        .lit(v, &k)
                        .map(|p| if p.starts_with('/') { p } else { format!("/{p}") });
                }
                "ssl" => match v.as_bool() {
                    Some(on) => s.tls = Some(on),
                    None if v.as_map().is_some() => {
                        s.tls = Some(false);
                        let names: Vec<String> = ["certificate_pem", "private_key_pem"]
                            .iter()
                            .filter_map(|f| v.get(f).and_then(Node::as_str))
                            .map(|n| format!("`{n}`"))
                            .collect();
                        self.w.add(
                            e.key_pos,
                            k,
                            format!(
                                "Kamal read this certificate from the secrets {}; wharf reads PEM files: write them next to wharf.toml and set `tls = {{ cert = \"certs/site.pem\", key = \"certs/site.key\" }}` in `http`. Until then the hosts are served over plain HTTP only, and https:// requests fail",
                                names.join(" and ")
                            ),
                        );
                    }
                    None => self.w.add(
                        v.pos,
                        k,
                        "expected `true`, `false` or a certificate; not carried over, so the hosts are served over plain HTTP only",
                    ),
                },
                "ssl_redirect" => {
                    if v.as_bool() == Some(false) {
                        self.w.add(
                            e.key_pos,
                            k,
                            "wharf always redirects plain HTTP to HTTPS once a host has its certificate, so http:// clients now get a redirect",
                        );
                    }
                }
                "response_timeout" => s.timeout = self.duration(v, &k),
                "buffering" => {
                    for b in self.w.map(v, &k) {
                        let bk = join_key(&k, &b.key);
                        match b.key.as_str() {
                            "max_request_body" => {
                                s.max_body = self.body_size(&b.value, &bk);
                            }
                            "requests" | "responses" => self.w.add(
                                b.key_pos,
                                bk,
                                "wharf's proxy streams bodies instead of buffering them, so a slow client holds an app connection for longer",
                            ),
                            _ => self.w.add(
                                b.key_pos,
                                bk,
                                "a kamal-proxy buffering setting wharf's proxy has no equivalent for; ignored, as it does not buffer",
                            ),
                        }
                    }
                }
                "healthcheck" => {
                    for h in self.w.map(v, &k) {
                        let hk = join_key(&k, &h.key);
                        match h.key.as_str() {
                            "path" => s.health_path = self.lit(&h.value, &hk),
                            "interval" => s.interval = self.duration(&h.value, &hk),
                            "timeout" => s.health_timeout = self.duration(&h.value, &hk),
                            _ => self.w.add(
                                h.key_pos,
                                hk,
                                "not supported by wharf's health checks; they run without it",
                            ),
                        }
                    }
                }
                "forward_headers" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf's proxy sets X-Forwarded-For/-Proto/-Host itself (and trusts incoming ones only from the proxies in server.toml), so nothing to change",
                ),
                "strip_path_prefix" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf's proxy passes the path as it came, prefix included, so an app that expects it stripped answers 404: serve the app under its prefix",
                ),
                "logging" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf's proxy logs requests its own way; not carried over, so these headers are not logged",
                ),
                "run" => self.w.add(
                    e.key_pos,
                    k,
                    "settings of the kamal-proxy container itself: wharf's proxy is configured in server.toml, so they no longer apply",
                ),
                _ => self.w.add(
                    e.key_pos,
                    k,
                    "not supported by wharf's proxy; requests are routed without it",
                ),
            }
        }
        s
    }

    /// kamal-proxy's `max_request_body`: bytes; 0 is no limit.
    fn body_size(&mut self, node: &Node, key: &str) -> Option<String> {
        let text = self.lit(node, key)?;
        match text.trim().replace('_', "").parse::<u64>() {
            Ok(0) => {
                self.w.add(
                    node.pos,
                    key,
                    "0 is no limit in kamal-proxy; wharf always has one, 100MiB by default, so larger requests now get 413",
                );
                None
            }
            Ok(bytes) => Some(size(bytes)),
            Err(_) => {
                self.w.add(
                    node.pos,
                    key,
                    format!("`{text}` is not a number of bytes; not carried over, so requests up to 100MiB (wharf's default) are taken"),
                );
                None
            }
        }
    }
}

/// Bytes as wharf.toml writes a size, exactly.
fn size(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes.is_multiple_of(MIB) {
        format!("{}MiB", bytes / MIB)
    } else if bytes.is_multiple_of(1_000_000) {
        format!("{}MB", bytes / 1_000_000)
    } else if bytes.is_multiple_of(1024) {
        format!("{}KiB", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

/// Hosts as wharf routes them: trimmed, lowercase, once each.
fn hosts(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in items {
        let h = h.trim().to_ascii_lowercase();
        if !h.is_empty() && !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_sizes() {
        assert_eq!(size(40_000_000), "40MB");
        assert_eq!(size(50 << 20), "50MiB");
        assert_eq!(size(10 * 1024), "10KiB");
        assert_eq!(size(1234), "1234");
    }
}
