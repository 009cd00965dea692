//! Which services are imported, and as what: `extends` resolved within the
//! file, services of non-default `profiles` left out, one-shot jobs found
//! (`service_completed_successfully`), and the app chosen — the service
//! that publishes HTTP, or the one named with `--service`.

use std::collections::HashSet;

use crate::common::{Warnings, parse_port};
use crate::yaml::{Entry, Kind, Node, Pos};

use super::interp::{Vars, resolve};

/// A service as compose would run it: `extends` merged in.
#[derive(Debug, Clone)]
pub struct Service {
    pub key: String,
    pub key_pos: Pos,
    pub node: Node,
}

impl Service {
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.node.get(key)
    }

    pub fn entries(&self) -> &[Entry] {
        self.node.as_map().unwrap_or_default()
    }
}

/// `extends` resolved (same file), then the services compose starts by
/// default: those without `profiles` (and `keep`, named with `--service`).
pub fn prepare(w: &mut Warnings, services: &[Entry], keep: Option<&str>) -> Vec<Service> {
    let mut out = Vec::new();
    for e in services {
        let node = extend(w, services, e, &mut Vec::new());
        let svc = Service {
            key: e.key.clone(),
            key_pos: e.key_pos,
            node,
        };
        if let Some(profiles) = e
            .value
            .as_map()
            .and_then(|m| m.iter().find(|f| f.key == "profiles"))
        {
            let names: Vec<&str> = profiles
                .value
                .as_seq()
                .unwrap_or_default()
                .iter()
                .filter_map(Node::as_str)
                .collect();
            if !names.is_empty() && keep != Some(e.key.as_str()) {
                let list = names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                w.add(
                    profiles.key_pos,
                    format!("services.{}.profiles", e.key),
                    format!(
                        "not imported: compose starts this service only with --profile {list}, and wharf has no profiles, so it will not run: to import it, delete its `profiles` and import again"
                    ),
                );
                continue;
            }
        }
        out.push(svc);
    }
    out
}

/// The service's mapping with what it `extends` (in this file) under it.
fn extend(w: &mut Warnings, services: &[Entry], e: &Entry, seen: &mut Vec<String>) -> Node {
    let Some(ext) = e.value.get("extends") else {
        return e.value.clone();
    };
    let key = format!("services.{}.extends", e.key);
    let (base, file) = match (ext.as_str(), ext.get("service").and_then(Node::as_str)) {
        (Some(name), _) => (name.to_owned(), None),
        (None, Some(name)) => (
            name.to_owned(),
            ext.get("file").and_then(Node::as_str).map(str::to_owned),
        ),
        _ => {
            w.add(
                ext.pos,
                key,
                "expected a service name or `{ service: NAME }`; nothing was inherited, so this service may lack its image, command or environment",
            );
            return without(&e.value, "extends");
        }
    };
    if let Some(file) = file {
        w.add(
            ext.pos,
            key,
            format!(
                "the service `{base}` of {file} is not read (the import reads one file), so whatever this service inherits from it — image, command, environment — is missing: copy those keys here, or import the output of `docker compose config`"
            ),
        );
        return without(&e.value, "extends");
    }
    seen.push(e.key.clone());
    let parent = match services.iter().find(|s| s.key == base) {
        Some(_) if seen.contains(&base) => {
            w.add(
                ext.pos,
                key,
                format!("`{base}` extends this service in turn; nothing was inherited, so this service may lack its image, command or environment"),
            );
            None
        }
        Some(p) => Some(extend(w, services, p, seen)),
        None => {
            w.add(
                ext.pos,
                key,
                format!("no service `{base}` in this file; nothing was inherited, so this service may lack its image, command or environment"),
            );
            None
        }
    };
    let own = without(&e.value, "extends");
    match parent {
        Some(parent) => merge(without(&parent, "profiles"), own),
        None => own,
    }
}

fn without(node: &Node, key: &str) -> Node {
    let entries = node
        .as_map()
        .unwrap_or_default()
        .iter()
        .filter(|e| e.key != key)
        .cloned()
        .collect();
    Node {
        pos: node.pos,
        kind: Kind::Map(entries),
    }
}

/// Compose's merge of a service over the one it extends: mappings merge
/// key by key (`environment` and `labels` in list form too), `ports`,
/// `expose`, `env_file`, `volumes`, `dns` and `tmpfs` are concatenated,
/// anything else the child's wins.
fn merge(parent: Node, child: Node) -> Node {
    let pos = child.pos;
    let mut entries: Vec<Entry> = parent.as_map().unwrap_or_default().to_vec();
    for c in child.as_map().unwrap_or_default() {
        match entries.iter_mut().find(|p| p.key == c.key) {
            None => entries.push(c.clone()),
            Some(p) => {
                p.value = match c.key.as_str() {
                    "environment" | "labels" | "build" | "deploy" | "healthcheck" | "logging"
                    | "depends_on" | "ulimits" => merge_maps(&p.value, &c.value),
                    "ports" | "expose" | "env_file" | "volumes" | "dns" | "tmpfs" | "secrets" => {
                        concat(&p.value, &c.value)
                    }
                    _ => c.value.clone(),
                };
                p.key_pos = c.key_pos;
            }
        }
    }
    Node {
        pos,
        kind: Kind::Map(entries),
    }
}

/// `KEY=value` lists as mappings, so both forms merge.
fn as_map(node: &Node) -> Option<Vec<Entry>> {
    if let Some(m) = node.as_map() {
        return Some(m.to_vec());
    }
    let items = node.as_seq()?;
    let mut out = Vec::new();
    for item in items {
        let text = item.as_str()?;
        let (k, v) = match text.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (text, None),
        };
        out.push(Entry {
            key: k.to_owned(),
            key_pos: item.pos,
            value: Node {
                pos: item.pos,
                kind: match v {
                    Some(v) => Kind::Scalar {
                        text: v.to_owned(),
                        quoted: true,
                    },
                    None => Kind::Null,
                },
            },
        });
    }
    Some(out)
}

fn merge_maps(parent: &Node, child: &Node) -> Node {
    match (as_map(parent), as_map(child)) {
        (Some(p), Some(c)) => {
            let mut entries = p;
            for e in c {
                match entries.iter_mut().find(|p| p.key == e.key) {
                    Some(slot) => *slot = e,
                    None => entries.push(e),
                }
            }
            Node {
                pos: child.pos,
                kind: Kind::Map(entries),
            }
        }
        _ => child.clone(),
    }
}

fn concat(parent: &Node, child: &Node) -> Node {
    let one = |n: &Node| match &n.kind {
        Kind::Seq(items) => items.clone(),
        Kind::Null => Vec::new(),
        _ => vec![n.clone()],
    };
    let mut items = one(parent);
    for item in one(child) {
        let dup = items
            .iter()
            .any(|i| i.as_str().is_some() && i.as_str() == item.as_str());
        if !dup {
            items.push(item);
        }
    }
    Node {
        pos: child.pos,
        kind: Kind::Seq(items),
    }
}

/// Services another one waits for with
/// `condition: service_completed_successfully`: one-shot jobs, in the
/// order compose runs them (a job waiting on another comes after it).
pub fn jobs(services: &[Service]) -> Vec<String> {
    let waits = |s: &Service| -> Vec<String> {
        s.get("depends_on")
            .and_then(Node::as_map)
            .unwrap_or_default()
            .iter()
            .filter(|d| {
                d.value.get("condition").and_then(Node::as_str)
                    == Some("service_completed_successfully")
            })
            .map(|d| d.key.clone())
            .collect()
    };
    let mut wanted: HashSet<String> = HashSet::new();
    for s in services {
        wanted.extend(waits(s));
    }
    let mut order: Vec<String> = Vec::new();
    // A few passes put a job after the jobs it waits for; a cycle is
    // compose's error, and ends up in file order.
    for _ in 0..services.len() {
        for s in services {
            if wanted.contains(&s.key)
                && !order.contains(&s.key)
                && waits(s)
                    .iter()
                    .all(|d| !wanted.contains(d) || order.contains(d))
            {
                order.push(s.key.clone());
            }
        }
    }
    for s in services {
        if wanted.contains(&s.key) && !order.contains(&s.key) {
            order.push(s.key.clone());
        }
    }
    order
}

/// What the app choice looks at in a service.
#[derive(Debug, Default, Clone)]
pub struct Candidate {
    pub name: String,
    pub image: Option<String>,
    pub builds: bool,
    /// Container ports from `ports` and `expose`.
    pub ports: Vec<u16>,
    /// Labels or env of an HTTP router (traefik, caddy, nginx-proxy).
    pub routed: bool,
    /// Waited on to complete: a one-shot job.
    pub job: bool,
    /// A reverse proxy in the file depends on it.
    pub proxied: bool,
}

impl Candidate {
    pub fn of(s: &Service, vars: &Vars, jobs: &[String]) -> Candidate {
        let text = |n: &Node| n.as_str().and_then(|t| resolve(t, vars).text);
        let mut ports = Vec::new();
        for p in s.get("ports").and_then(Node::as_seq).unwrap_or_default() {
            let port = match p.get("target") {
                Some(t) => text(t).and_then(|t| t.parse().ok()),
                None => text(p).and_then(|t| parse_port(&t).ok().map(|p| p.container_port)),
            };
            ports.extend(port);
        }
        for p in s.get("expose").and_then(Node::as_seq).unwrap_or_default() {
            ports.extend(text(p).and_then(|t| t.split('/').next()?.parse::<u16>().ok()));
        }
        let routed = labels(s).iter().any(|(k, v)| {
            k.starts_with("traefik.http.") || (k == "traefik.enable" && v == "true") || k == "caddy"
        }) || env_keys(s).iter().any(|k| k == "VIRTUAL_HOST");
        Candidate {
            name: s.key.clone(),
            image: s.get("image").and_then(text),
            builds: s.get("build").is_some(),
            ports,
            routed,
            job: jobs.contains(&s.key),
            proxied: false,
        }
    }
}

/// A service's labels as pairs (mapping or `k=v` list).
pub fn labels(s: &Service) -> Vec<(String, String)> {
    s.get("labels").map(labels_of).unwrap_or_default()
}

/// A `labels` value as pairs (mapping or `k=v` list).
pub fn labels_of(node: &Node) -> Vec<(String, String)> {
    as_map(node)
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.key, e.value.as_str().unwrap_or_default().to_owned()))
        .collect()
}

fn env_keys(s: &Service) -> Vec<String> {
    s.get("environment")
        .and_then(as_map)
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.key)
        .collect()
}

/// The last path segment of an image without its tag or digest:
/// `docker.io/library/postgres:16` → `postgres`.
pub fn image_base(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split(':').next().unwrap_or(last)
}

/// Images (and service names) of what runs next to an app: databases,
/// caches, queues, search, mail catchers, object stores.
const DATASTORES: &[&str] = &[
    "postgres",
    "postgresql",
    "postgis",
    "pgvector",
    "timescaledb",
    "mysql",
    "mariadb",
    "mongo",
    "mongodb",
    "redis",
    "valkey",
    "keydb",
    "dragonfly",
    "memcached",
    "clickhouse",
    "clickhouse-server",
    "elasticsearch",
    "opensearch",
    "meilisearch",
    "typesense",
    "solr",
    "rabbitmq",
    "kafka",
    "zookeeper",
    "nats",
    "minio",
    "mailpit",
    "mailhog",
    "etcd",
    "cassandra",
    "couchdb",
    "influxdb",
    "db",
    "database",
    "cache",
    "queue",
    "search",
    "smtp",
    "mail",
    "pgbouncer",
];

/// Images of reverse proxies, which route to the app rather than being it.
const PROXIES: &[&str] = &[
    "nginx",
    "caddy",
    "traefik",
    "haproxy",
    "nginx-proxy",
    "envoy",
    "cloudflared",
    "acme-companion",
    "proxy",
];

/// Ports that are not HTTP (databases, caches, mail).
const NOT_HTTP: &[u16] = &[
    21, 22, 25, 53, 465, 587, 993, 1433, 1883, 2181, 3306, 4222, 5432, 5672, 6379, 6432, 9042,
    9092, 9300, 11211, 27017,
];

fn word_in(list: &[&str], name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    list.iter()
        .any(|w| name == *w || name.split(['-', '_', '.']).any(|part| part == *w))
}

/// A database, cache or other backing service, by its image or name.
pub fn is_datastore(name: &str, image: Option<&str>) -> bool {
    image.is_some_and(|i| word_in(DATASTORES, image_base(i))) || word_in(DATASTORES, name)
}

pub fn is_proxy(name: &str, image: Option<&str>) -> bool {
    image.is_some_and(|i| word_in(PROXIES, image_base(i))) || word_in(PROXIES, name)
}

/// Why a service was chosen as the app, for the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Asked,
    Routed,
    Http,
    Proxied,
    Built,
    Only,
}

/// The app: `asked` when given (its index, or `Err` listing the names),
/// else the service that publishes HTTP — labelled for a router, then with
/// an HTTP-looking port, then one a reverse proxy fronts, then the first
/// one built — never a job, a database or a proxy while another is left.
pub fn choose_app(cands: &[Candidate], asked: Option<&str>) -> Result<(usize, Why), ()> {
    if let Some(asked) = asked {
        return cands
            .iter()
            .position(|c| c.name == asked)
            .map(|i| (i, Why::Asked))
            .ok_or(());
    }
    let eligible: Vec<usize> = (0..cands.len())
        .filter(|&i| {
            let c = &cands[i];
            !c.job
                && !is_datastore(&c.name, c.image.as_deref())
                && !is_proxy(&c.name, c.image.as_deref())
        })
        .collect();
    let http = |c: &Candidate| c.ports.iter().any(|p| !NOT_HTTP.contains(p));
    type Rule<'a> = &'a dyn Fn(&Candidate) -> bool;
    let rules: [(Why, Rule); 4] = [
        (Why::Routed, &|c: &Candidate| c.routed),
        (Why::Http, &|c: &Candidate| http(c)),
        (Why::Proxied, &|c: &Candidate| c.proxied),
        (Why::Built, &|c: &Candidate| c.builds),
    ];
    for (why, rule) in rules {
        // Among several, one built by the file is the app more likely
        // than a prebuilt sidecar.
        let matching: Vec<usize> = eligible
            .iter()
            .copied()
            .filter(|&i| rule(&cands[i]))
            .collect();
        if let Some(&i) = matching
            .iter()
            .find(|&&i| cands[i].builds)
            .or(matching.first())
        {
            return Ok((i, why));
        }
    }
    match eligible.as_slice() {
        [only] => Ok((*only, Why::Only)),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(name: &str, image: Option<&str>, builds: bool, ports: &[u16]) -> Candidate {
        Candidate {
            name: name.into(),
            image: image.map(Into::into),
            builds,
            ports: ports.to_vec(),
            ..Candidate::default()
        }
    }

    #[test]
    fn the_app_publishes_http() {
        // A clickhouse built first, then the web app and its workers.
        let cands = [
            cand("events_db", None, true, &[8123]),
            cand("plausible_db", Some("postgres:16-alpine"), false, &[]),
            cand("web", None, true, &[8000]),
            cand("worker", None, true, &[]),
        ];
        assert_eq!(choose_app(&cands, None), Ok((2, Why::Http)));
        // Image-only, the app behind its published port.
        let cands = [
            cand("db", Some("postgres:16"), false, &[5432]),
            cand("app", Some("ghcr.io/acme/app:1.2"), false, &[3000]),
            cand("jobs", Some("ghcr.io/acme/app:1.2"), false, &[]),
        ];
        assert_eq!(choose_app(&cands, None), Ok((1, Why::Http)));
        // A reverse proxy publishes 80/443; the app is what it fronts.
        let mut app = cand("app", None, true, &[]);
        app.proxied = true;
        let cands = [cand("caddy", Some("caddy:2"), false, &[80, 443]), app];
        assert_eq!(choose_app(&cands, None), Ok((1, Why::Proxied)));
        // Traefik labels win over a port.
        let mut routed = cand("server", Some("acme/server"), false, &[]);
        routed.routed = true;
        let cands = [cand("admin", Some("acme/admin"), false, &[8080]), routed];
        assert_eq!(choose_app(&cands, None), Ok((1, Why::Routed)));
    }

    #[test]
    fn jobs_and_datastores_are_not_the_app() {
        let mut job = cand("migrate", None, true, &[]);
        job.job = true;
        let cands = [job, cand("web", None, true, &[])];
        assert_eq!(choose_app(&cands, None), Ok((1, Why::Built)));
        let cands = [
            cand("db", Some("postgres:16"), false, &[5432]),
            cand("redis", Some("redis:7"), false, &[6379]),
        ];
        assert_eq!(choose_app(&cands, None), Err(()));
        assert_eq!(choose_app(&cands, Some("redis")), Ok((1, Why::Asked)));
        assert_eq!(choose_app(&cands, Some("nope")), Err(()));
    }

    #[test]
    fn image_bases() {
        assert_eq!(image_base("docker.io/library/postgres:16"), "postgres");
        assert_eq!(
            image_base("clickhouse/clickhouse-server:24.3-alpine"),
            "clickhouse-server"
        );
        assert_eq!(image_base("ghcr.io/a/b@sha256:00"), "b");
        assert!(is_datastore("plausible_events_db", None));
        assert!(!is_datastore(
            "web",
            Some("ghcr.io/plausible/community-edition:v2")
        ));
        assert!(is_proxy("front", Some("nginx:1.27-alpine")));
    }
}
