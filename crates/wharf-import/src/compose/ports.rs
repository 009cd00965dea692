//! Ports (short and long syntax, `expose`) and how the app was routed
//! before wharf: traefik labels (`Host(…)`, `PathPrefix(…)`, TLS, the
//! service port), caddy-docker-proxy labels, nginx-proxy's
//! `VIRTUAL_HOST`/`VIRTUAL_PORT`/`LETSENCRYPT_HOST`.

use crate::common::{PortMap, Values, join_key, parse_port};
use crate::yaml::{Node, Pos};

use super::Ctx;
use super::services::{Service, labels};

/// How a router in front of compose reached the service.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Route {
    pub hosts: Vec<String>,
    pub path: Option<String>,
    pub tls: bool,
    pub port: Option<u16>,
    /// Labels read for this, which need no warning of their own.
    pub used: Vec<String>,
}

impl Ctx {
    /// The ports that could be read, each with its index and position.
    pub(super) fn ports(&mut self, key: &str, node: &Node) -> Vec<(usize, Pos, PortMap)> {
        let mut out = Vec::new();
        for (i, item) in self.w.list(node, key).iter().enumerate() {
            let k = format!("{key}[{i}]");
            let parsed = if item.as_map().is_some() {
                self.long_port(&k, item)
            } else {
                self.lit(item, &k).map(|t| parse_port(&t))
            };
            match parsed {
                Some(Ok(p)) => out.push((i, item.pos, p)),
                Some(Err(why)) => self.w.add(
                    item.pos,
                    k,
                    format!("{why}; not carried over, so nothing answers on this port"),
                ),
                None => {}
            }
        }
        out
    }

    fn long_port(&mut self, key: &str, node: &Node) -> Option<Result<PortMap, String>> {
        let mut target = None;
        let mut published = None;
        let mut host_ip = None;
        let mut protocol = "tcp".to_owned();
        for e in node.as_map().unwrap_or_default() {
            let k = join_key(key, &e.key);
            match e.key.as_str() {
                "target" => target = Some(self.lit(&e.value, &k)?),
                "published" => published = Some(self.lit(&e.value, &k)?),
                "host_ip" => host_ip = Some(self.lit(&e.value, &k)?),
                "protocol" => protocol = self.lit(&e.value, &k)?,
                "mode" | "name" | "app_protocol" => {}
                _ => self.w.add(
                    e.key_pos,
                    k,
                    "not supported by wharf; the port is published without it",
                ),
            }
        }
        let Some(target) = target else {
            return Some(Err("no `target` port".into()));
        };
        let mut spec = String::new();
        if let Some(ip) = &host_ip {
            if ip.contains(':') {
                spec.push_str(&format!("[{ip}]:"));
            } else {
                spec.push_str(&format!("{ip}:"));
            }
        }
        if let Some(p) = &published {
            spec.push_str(&format!("{p}:"));
        } else if host_ip.is_some() {
            spec.push(':');
        }
        spec.push_str(&format!("{target}/{protocol}"));
        Some(parse_port(&spec))
    }

    /// `expose:` container ports.
    pub(super) fn expose(&mut self, key: &str, node: &Node) -> Vec<u16> {
        let mut out = Vec::new();
        for (i, item) in self.w.list(node, key).iter().enumerate() {
            let k = format!("{key}[{i}]");
            let Some(text) = self.lit(item, &k) else {
                continue;
            };
            match text.split('/').next().and_then(|p| p.parse::<u16>().ok()) {
                Some(p) if p > 0 => out.push(p),
                _ => self.w.add(
                    item.pos,
                    k,
                    format!("`{text}` is not a port; ignored, which changes nothing: services reach each other on the app's network"),
                ),
            }
        }
        out
    }

    /// The route a router in front of compose gave the service.
    pub(super) fn route(&mut self, svc: &Service) -> Route {
        let mut route = Route::default();
        let pos = svc.get("labels").map_or(svc.key_pos, |n| n.pos);
        let key = format!("services.{}.labels", svc.key);
        for (k, v) in labels(svc) {
            let v = self.resolve_quiet(&v);
            if let Some(rest) = k.strip_prefix("traefik.http.routers.") {
                let field = rest.split_once('.').map_or("", |(_, f)| f);
                match field {
                    "rule" => {
                        let (hosts, paths, rest) = traefik_rule(&v);
                        route.hosts.extend(hosts);
                        if route.path.is_none() {
                            route.path = paths.into_iter().next();
                        }
                        if !rest.is_empty() {
                            self.w.add(
                                pos,
                                &key,
                                format!("traefik rule `{v}`: {} cannot be expressed in wharf's routes, which match hosts and a path prefix only; requests are routed without that condition", rest.join(", ")),
                            );
                        }
                    }
                    "tls" => route.tls |= v == "true",
                    f if f.starts_with("tls.") => route.tls = true,
                    "entrypoints" | "service" => {}
                    _ => continue,
                }
                route.used.push(k);
            } else if let Some(rest) = k.strip_prefix("traefik.http.services.") {
                if rest.ends_with(".loadbalancer.server.port") {
                    route.port = v.parse().ok();
                    route.used.push(k);
                }
            } else if k == "traefik.enable" || k == "traefik.docker.network" {
                route.used.push(k);
            } else if k == "caddy" || k.starts_with("caddy_") && !k.contains('.') {
                for site in v.split([',', ' ']).filter(|s| !s.is_empty()) {
                    let host = site
                        .trim_start_matches("https://")
                        .trim_start_matches("http://");
                    route.tls |= !site.starts_with("http://");
                    route
                        .hosts
                        .push(host.split(['/', ':']).next().unwrap_or(host).to_owned());
                }
                route.used.push(k);
            } else if k.starts_with("caddy") && k.ends_with("reverse_proxy") {
                route.port = v
                    .split(|c: char| !c.is_ascii_digit())
                    .find_map(|n| n.parse().ok());
                route.used.push(k);
            }
        }
        for (k, _, v) in self.env_pairs_quiet(svc) {
            match k.as_str() {
                "VIRTUAL_HOST" => route.hosts.extend(
                    v.split(',')
                        .map(|h| h.trim().to_owned())
                        .filter(|h| !h.is_empty()),
                ),
                "VIRTUAL_PORT" => route.port = v.parse().ok(),
                "VIRTUAL_PATH" => route.path = Some(v),
                "LETSENCRYPT_HOST" => route.tls = true,
                _ => {}
            }
        }
        let mut hosts: Vec<String> = Vec::new();
        for h in route.hosts.drain(..) {
            let h = h.to_ascii_lowercase();
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
        route.hosts = hosts;
        route
    }

    /// `environment` as plain pairs, interpolated without warnings (they
    /// are given where the environment itself is read).
    fn env_pairs_quiet(&mut self, svc: &Service) -> Vec<(String, Pos, String)> {
        let Some(node) = svc.get("environment") else {
            return Vec::new();
        };
        let pairs: Vec<(String, Pos, String)> = match (node.as_map(), node.as_seq()) {
            (Some(m), _) => m
                .iter()
                .filter_map(|e| Some((e.key.clone(), e.key_pos, e.value.as_str()?.to_owned())))
                .collect(),
            (_, Some(items)) => items
                .iter()
                .filter_map(|i| {
                    let (k, v) = i.as_str()?.split_once('=')?;
                    Some((k.to_owned(), i.pos, v.to_owned()))
                })
                .collect(),
            _ => Vec::new(),
        };
        pairs
            .into_iter()
            .map(|(k, p, v)| {
                let v = self.resolve_quiet(&v);
                (k, p, v)
            })
            .collect()
    }
}

/// Hosts and path prefixes of a traefik router rule, and the matchers that
/// are neither (`HostRegexp`, `Headers`, `Method`…).
pub fn traefik_rule(rule: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut hosts, mut paths, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    let mut s = rule;
    while let Some(open) = s.find('(') {
        let name = s[..open]
            .rsplit(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or("");
        if name.is_empty() {
            s = &s[open + 1..];
            continue;
        }
        let Some(close) = s[open..].find(')') else {
            break;
        };
        let args: Vec<String> = s[open + 1..open + close]
            .split(',')
            .map(|a| a.trim().trim_matches(['`', '"', '\'']).to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        match name {
            "Host" => hosts.extend(args),
            "PathPrefix" | "Path" => paths.extend(args),
            other => rest.push(format!("`{other}(…)`")),
        }
        s = &s[open + close + 1..];
    }
    (hosts, paths, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traefik_rules() {
        let (hosts, paths, rest) =
            traefik_rule("Host(`plausible.example.org`) || Host(`www.plausible.example.org`)");
        assert_eq!(
            hosts,
            ["plausible.example.org", "www.plausible.example.org"]
        );
        assert!(paths.is_empty() && rest.is_empty());
        let (hosts, paths, _) = traefik_rule("Host(`a.io`, `b.io`) && PathPrefix(`/api`)");
        assert_eq!((hosts.len(), paths), (2, vec!["/api".to_owned()]));
        let (_, _, rest) = traefik_rule("HostRegexp(`{sub:[a-z]+}.a.io`)");
        assert_eq!(rest, ["`HostRegexp(…)`"]);
    }
}
