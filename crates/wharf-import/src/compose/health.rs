//! Health checks. An HTTP process is probed by wharf's proxy with GET
//! requests, so its path is read from a `curl`/`wget` healthcheck; an
//! accessory keeps its command, run by the engine. `retries` means the
//! same in compose and in an accessory's `health` (failures in a row before
//! unhealthy), and not what a process's `health.threshold` means (passes
//! before traffic, and failures before leaving it), so it is only mapped
//! onto the former.

use crate::common::{Values, join_key, parse_duration, shell_join};
use crate::model::{AccessoryHealth, Health};
use crate::yaml::{Entry, Node, Pos};

use super::Ctx;

/// What an HTTP healthcheck command requests.
#[derive(Debug, PartialEq, Eq)]
pub struct Probe {
    pub path: String,
    pub port: Option<u16>,
}

/// The URL a `curl` or `wget` health command requests: its path (and
/// query), and its port when written. `None` for other commands.
pub fn health_probe(command: &str) -> Option<Probe> {
    /// Options of curl and wget that take a value, which is not the URL.
    const WITH_VALUE: &[&str] = &[
        "--noproxy",
        "-H",
        "--header",
        "-o",
        "--output",
        "-O",
        "--output-document",
        "-u",
        "--user",
        "-m",
        "--max-time",
        "-X",
        "--request",
        "--retry",
        "-A",
        "--user-agent",
        "--connect-timeout",
        "-w",
        "--write-out",
        "--resolve",
        "-T",
        "--timeout",
        "-t",
        "--tries",
        "-U",
        "-e",
    ];
    let words: Vec<&str> = command
        .split(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | ';' | '|' | '&' | '(' | ')'))
        .filter(|w| !w.is_empty())
        .collect();
    let tool = words
        .iter()
        .position(|w| matches!(w.rsplit('/').next(), Some("curl" | "wget")))?;
    let mut args = Vec::new();
    let mut skip = false;
    for w in &words[tool + 1..] {
        if skip {
            skip = false;
        } else if w.starts_with('-') {
            skip = WITH_VALUE.contains(w);
        } else {
            args.push(*w);
        }
    }
    let local = |w: &&&str| {
        ["localhost", "127.0.0.1", "0.0.0.0", "[::1]"]
            .iter()
            .any(|h| w.starts_with(h))
    };
    let url = args
        .iter()
        .find(|w| w.contains("://"))
        .or_else(|| args.iter().find(local))?;
    let rest = url.split_once("://").map_or(*url, |(_, r)| r);
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let port = authority
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok());
    Some(Probe {
        path: path.to_owned(),
        port,
    })
}

impl Ctx {
    /// The health check of an HTTP process: the path a `curl`/`wget` test
    /// requests, else wharf's default `/up`.
    pub(super) fn process_health(
        &mut self,
        svc: &str,
        svc_pos: Pos,
        port: Option<u16>,
        hc: Option<&Entry>,
    ) -> Health {
        let mut health = Health {
            path: "/up".into(),
            ..Health::default()
        };
        let on = port.map_or_else(|| "its port".to_owned(), |p| format!("port {p}"));
        let Some(hc) = hc else {
            self.w.add(
                svc_pos,
                svc,
                format!("has no `healthcheck`: wharf sends traffic to a new instance only once GET /up on {on} answers 2xx or 3xx, so every deploy fails if the app does not answer there: make it, or set `health.path`"),
            );
            return health;
        };
        let key = format!("{svc}.healthcheck");
        for f in self.w.map(&hc.value, &key) {
            let k = join_key(&key, &f.key);
            match f.key.as_str() {
                "test" => {
                    let text = match (f.value.as_seq(), f.value.as_str()) {
                        (Some(items), _) => items
                            .iter()
                            .filter_map(Node::as_str)
                            .filter(|w| !matches!(*w, "CMD" | "CMD-SHELL"))
                            .collect::<Vec<_>>()
                            .join(" "),
                        (None, Some(s)) => s.to_owned(),
                        _ => String::new(),
                    };
                    let text = self.resolve_quiet(&text);
                    match health_probe(&text) {
                        Some(probe) => {
                            if let (Some(checked), Some(port)) = (probe.port, port)
                                && checked != port
                            {
                                self.w.add(
                                    f.value.pos,
                                    &k,
                                    format!("compose checked port {checked}; wharf probes GET {} on port {port}, the one it routes to, so instances never become healthy if only port {checked} answers there", probe.path),
                                );
                            }
                            health.path = probe.path;
                        }
                        None => self.w.add(
                            f.value.pos,
                            k,
                            format!("wharf checks HTTP processes with GET requests, not commands: `{text}` does not run, and GET /up on {on} is probed instead, so every deploy fails if the app does not answer there with 2xx or 3xx: set `health.path` to a path that does"),
                        ),
                    }
                }
                "interval" => health.interval = self.duration(&f.value, &k),
                "timeout" => {
                    health.timeout = self.duration(&f.value, &k);
                    if health
                        .timeout
                        .as_deref()
                        .and_then(parse_duration)
                        .is_some_and(|ms| ms > 60_000)
                    {
                        self.w.add(
                            f.value.pos,
                            k,
                            "wharf allows a probe at most 60s, so `1m` was written instead: a probe slower than that fails",
                        );
                        health.timeout = Some("1m".into());
                    }
                }
                "retries" => {
                    let n = self.lit(&f.value, &k).unwrap_or_default();
                    self.w.add(
                        f.key_pos,
                        k,
                        format!("compose marks the container unhealthy after {n} failed checks in a row; wharf's `health.threshold` is not that (it counts passes before traffic as well as failures before leaving it), so this was not carried over: wharf takes an instance out of rotation after 2 failed probes in a row, its default threshold"),
                    );
                }
                "disable" => self.w.add(
                    f.key_pos,
                    k,
                    format!("wharf always health-checks HTTP processes before sending them traffic, so GET {} must answer 2xx or 3xx or every deploy fails", health.path),
                ),
                "start_period" | "start_interval" => {
                    let long = self
                        .duration(&f.value, &k)
                        .as_deref()
                        .and_then(parse_duration)
                        .is_some_and(|ms| ms > 60_000);
                    let msg = if long {
                        "wharf waits up to `deploy.health_timeout` (60s by default) for a new instance to pass, so an app that takes this long to boot fails every deploy: raise `health_timeout` in [deploy]"
                    } else {
                        "nothing to change: wharf waits up to `deploy.health_timeout` (60s by default) for a new instance to pass, and does not count failures before that"
                    };
                    self.w.add(f.key_pos, k, msg);
                }
                _ => self.w.add(
                    f.key_pos,
                    k,
                    "not supported by wharf; the check runs without it",
                ),
            }
        }
        health
    }

    /// A compose `healthcheck` as an accessory's health command.
    pub(super) fn accessory_health(&mut self, key: &str, node: &Node) -> Option<AccessoryHealth> {
        let mut health = AccessoryHealth::default();
        let mut command = None;
        for e in node.as_map().unwrap_or_default() {
            let k = join_key(key, &e.key);
            match e.key.as_str() {
                "test" => command = self.health_test(&k, &e.value),
                "interval" => health.interval = self.duration(&e.value, &k),
                "timeout" => health.timeout = self.duration(&e.value, &k),
                "start_period" => health.start_timeout = self.duration(&e.value, &k),
                // Failures in a row before unhealthy, in both.
                "retries" => health.retries = self.int(&e.value, &k, 1, 100).map(|n| n as u32),
                "disable" => {
                    if e.value.as_bool() == Some(true) {
                        return None;
                    }
                }
                _ => self.w.add(
                    e.key_pos,
                    k,
                    "not supported by wharf; the check runs without it",
                ),
            }
        }
        if node.as_map().is_none() {
            self.w.add(
                node.pos,
                key,
                "expected a mapping; not carried over, so the accessory counts as up as soon as it starts",
            );
            return None;
        }
        if node.get("test").is_none() {
            self.w.add(
                node.pos,
                key,
                "no `test`: compose used the image's own HEALTHCHECK, which wharf does not read, so the accessory counts as up as soon as it starts: write the command as `health.command`",
            );
        }
        health.command = command?;
        Some(health)
    }

    /// `test:` as an argv string: `CMD` args are joined with quoting,
    /// `CMD-SHELL` and a plain string need a shell, so `sh -c '…'`.
    fn health_test(&mut self, key: &str, node: &Node) -> Option<String> {
        if let Some(items) = node.as_seq() {
            let argv = self.argv(key, items)?;
            return match argv.split_first() {
                Some((first, rest)) if first == "CMD" && !rest.is_empty() => Some(shell_join(rest)),
                Some((first, rest)) if first == "CMD-SHELL" && !rest.is_empty() => {
                    Some(shell_join(&["sh".into(), "-c".into(), rest.join(" ")]))
                }
                Some((first, _)) if first == "NONE" => None,
                _ => {
                    self.w.add(
                        node.pos,
                        key,
                        "expected `[\"CMD\", …]` or `[\"CMD-SHELL\", \"…\"]`; not carried over, so the accessory counts as up as soon as it starts",
                    );
                    None
                }
            };
        }
        let text = self.lit(node, key)?;
        Some(shell_join(&["sh".into(), "-c".into(), text]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(cmd: &str) -> Option<(String, Option<u16>)> {
        health_probe(cmd).map(|p| (p.path, p.port))
    }

    #[test]
    fn paths_of_curl_and_wget_checks() {
        assert_eq!(
            probe("curl -f http://localhost:3000/up || exit 1"),
            Some(("/up".into(), Some(3000)))
        );
        assert_eq!(
            probe("curl --fail --silent localhost:8000/api/health"),
            Some(("/api/health".into(), Some(8000)))
        );
        assert_eq!(
            probe("wget -q --spider http://127.0.0.1:8080"),
            Some(("/".into(), Some(8080)))
        );
        assert_eq!(
            probe("wget -qO- 'http://localhost/healthz?full=1'"),
            Some(("/healthz?full=1".into(), None))
        );
        assert_eq!(
            probe("/usr/bin/curl -fsS https://localhost:443/ping"),
            Some(("/ping".into(), Some(443)))
        );
        assert_eq!(
            probe("curl -s --noproxy localhost localhost:3000/health | grep -q OK"),
            Some(("/health".into(), Some(3000)))
        );
        assert_eq!(probe("pg_isready -U postgres"), None);
        assert_eq!(probe("node healthcheck.js http://localhost:3000/x"), None);
        assert_eq!(probe("curl --version"), None);
    }
}
