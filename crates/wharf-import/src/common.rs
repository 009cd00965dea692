//! What both importers need: the warning list, the typed readers built on
//! each importer's own scalar reading ([`Values`]), names, durations,
//! memory sizes, ports, volumes and paths in the forms `wharf.toml` takes.

use std::path::{Component, Path, PathBuf};

use crate::Warning;
use crate::yaml::{Entry, Node, Pos};

/// Warnings collected while importing one file, each with its position so
/// they can be listed in file order at the end.
#[derive(Debug)]
pub struct Warnings {
    file: String,
    list: Vec<(Pos, Warning)>,
}

impl Warnings {
    pub fn new(file: &str) -> Warnings {
        Warnings {
            file: file.to_owned(),
            list: Vec::new(),
        }
    }

    pub fn location(&self, pos: Pos) -> String {
        format!("{}:{}:{}", self.file, pos.line, pos.col)
    }

    pub fn add(&mut self, pos: Pos, key: impl Into<String>, message: impl Into<String>) {
        let location = self.location(pos);
        self.list.push((
            pos,
            Warning {
                location,
                key: key.into(),
                message: message.into(),
            },
        ));
    }

    /// A warning about another file (`.env`), listed before those of this
    /// one.
    pub fn add_in(&mut self, file: &str, line: usize, key: &str, message: impl Into<String>) {
        self.list.push((
            Pos { line: 0, col: line },
            Warning {
                location: format!("{file}:{line}:1"),
                key: key.to_owned(),
                message: message.into(),
            },
        ));
    }

    /// A mapping's entries; anything else but nothing is warned about and
    /// read as empty.
    pub fn map<'a>(&mut self, node: &'a Node, key: &str) -> &'a [Entry] {
        if node.as_map().is_none() && !node.is_null() {
            self.expected(node, key, "a mapping");
        }
        node.as_map().unwrap_or_default()
    }

    /// A list's items; anything else but nothing is warned about and read
    /// as empty.
    pub fn seq<'a>(&mut self, node: &'a Node, key: &str) -> &'a [Node] {
        if node.as_seq().is_none() && !node.is_null() {
            self.expected(node, key, "a list");
        }
        node.as_seq().unwrap_or_default()
    }

    /// A list's items; anything else, nothing included, is warned about
    /// and read as empty.
    pub fn list<'a>(&mut self, node: &'a Node, key: &str) -> &'a [Node] {
        if node.as_seq().is_none() {
            self.expected(node, key, "a list");
        }
        node.as_seq().unwrap_or_default()
    }

    /// A scalar's text, as written; anything else is warned about.
    pub fn scalar<'a>(&mut self, node: &'a Node, key: &str) -> Option<&'a str> {
        if node.as_str().is_none() {
            self.expected(node, key, "a single value");
        }
        node.as_str()
    }

    /// Whether `name` can be an env key in wharf.toml; a warning at `pos`
    /// (about `key`) when it cannot.
    pub fn env_key(&mut self, pos: Pos, key: &str, name: &str) -> bool {
        let ok = is_env_key(name);
        if !ok {
            self.add(
                pos,
                key,
                "wharf takes env keys made of letters, digits and `_`, not starting with a digit; not carried over, so the app runs without this variable",
            );
        }
        ok
    }

    fn expected(&mut self, node: &Node, key: &str, what: &str) {
        self.add(
            node.pos,
            key,
            format!(
                "expected {what}, found {}; not carried over",
                node.describe()
            ),
        );
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// In file order; warnings about the same spot keep the order they were
    /// found in.
    pub fn into_sorted(mut self) -> Vec<Warning> {
        self.list.sort_by_key(|(pos, _)| *pos);
        self.list.into_iter().map(|(_, w)| w).collect()
    }
}

/// The typed readers both importers share. Each reads a scalar's text its
/// own way ([`Values::lit`]: compose interpolates `${VAR}`, Kamal refuses
/// ERB); what is read from that text, and the warnings when it cannot be,
/// are the same.
pub trait Values {
    /// How a duration is written in the source files, for the warning
    /// about one that is not, e.g. "a number of seconds".
    const DURATION: &'static str;

    fn warnings(&mut self) -> &mut Warnings;

    /// A scalar's text, or a warning and `None`.
    fn lit(&mut self, node: &Node, key: &str) -> Option<String>;

    fn int(&mut self, node: &Node, key: &str, min: u64, max: u64) -> Option<u64> {
        let text = self.lit(node, key)?;
        match text.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.warnings().add(
                    node.pos,
                    key,
                    format!("`{text}` is not a whole number from {min} to {max}; not carried over, so wharf's default applies: write a number in that range"),
                );
                None
            }
        }
    }

    /// A duration as wharf.toml writes it.
    fn duration(&mut self, node: &Node, key: &str) -> Option<String> {
        let text = self.lit(node, key)?;
        match parse_duration(&text) {
            Some(ms) => Some(format_duration(ms)),
            None => {
                self.warnings().add(
                    node.pos,
                    key,
                    format!(
                        "`{text}` is not {}; not carried over, so wharf's default applies",
                        Self::DURATION
                    ),
                );
                None
            }
        }
    }

    /// A memory size as wharf.toml writes it.
    fn memory(&mut self, node: &Node, key: &str) -> Option<String> {
        let text = self.lit(node, key)?;
        match parse_memory(&text) {
            Ok(m) => Some(m),
            Err(why) => {
                self.warnings().add(
                    node.pos,
                    key,
                    format!("{why}; not carried over, so no memory limit applies"),
                );
                None
            }
        }
    }

    fn cpus(&mut self, node: &Node, key: &str) -> Option<f64> {
        let text = self.lit(node, key)?;
        let cpus = parse_cpus(&text);
        if cpus.is_none() {
            self.warnings().add(
                node.pos,
                key,
                format!("`{text}` is not a positive number of CPUs; not carried over, so no CPU limit applies"),
            );
        }
        cpus
    }

    /// A list of arguments, each read with [`Values::lit`] (as `key[i]`);
    /// `None` when one cannot be.
    fn argv(&mut self, key: &str, items: &[Node]) -> Option<Vec<String>> {
        let mut argv = Vec::new();
        for (i, item) in items.iter().enumerate() {
            argv.push(self.lit(item, &format!("{key}[{i}]"))?);
        }
        Some(argv)
    }
}

/// `a.b` for messages and warning keys; `a."b.c"` is not worth the noise.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// An app, process or accessory name: `[a-z0-9][a-z0-9-]*`, at most 63
/// characters.
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The closest valid name: lowercase, runs of other characters become one
/// `-`, no leading or trailing `-`, at most 63 characters. Empty when
/// nothing usable is left.
pub fn sanitize_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(63);
    out.trim_end_matches('-').to_owned()
}

/// A valid process or accessory name for `raw` (`fallback` when nothing of
/// it is usable), made unique with a `-2`, `-3`… suffix while `taken`.
pub fn unique_name(raw: &str, fallback: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut base = sanitize_name(raw);
    if base.is_empty() {
        base = fallback.to_owned();
    }
    let mut name = base.clone();
    let mut n = 2;
    while taken(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// A network alias wharf takes: letters, digits, `_`, `.`, `-`.
pub fn is_alias(a: &str) -> bool {
    a.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && a.len() <= 253
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `[A-Za-z_][A-Za-z0-9_]*`, as wharf.toml requires for env keys.
pub fn is_env_key(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Durations as compose (Go) and Kamal (seconds) write them: `90`, `1m30s`,
/// `1.5s`, `500ms`, `2h`. Milliseconds, or `None` when unreadable.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<u64>() {
        return secs.checked_mul(1000);
    }
    let mut total: f64 = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        rest = rest[unit_len..].trim_start();
        let ms = match unit {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            "ns" => 0.000_001,
            _ => return None,
        };
        total += number * ms;
    }
    if !total.is_finite() || total > 1e15 {
        return None;
    }
    Some(total.round() as u64)
}

/// Milliseconds as wharf.toml writes them: `500ms`, `30s`, `1m 30s`.
pub fn format_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut parts = Vec::new();
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, milli) = (rest / 1000, rest % 1000);
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 {
        parts.push(format!("{m}m"));
    }
    if s > 0 {
        parts.push(format!("{s}s"));
    }
    if milli > 0 {
        parts.push(format!("{milli}ms"));
    }
    parts.join(" ")
}

/// A memory size as docker and compose take it (`512m`, `1g`, `1GiB`,
/// `268435456`), written the way wharf.toml does: `512MiB`, `1GiB`.
/// Sizes under a mebibyte are refused: no container runs in that.
pub fn parse_memory(text: &str) -> Result<String, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a memory size"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let factor: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("`{text}` has an unknown unit `{unit}`")),
    };
    let bytes = number * factor;
    const MIB: f64 = 1024.0 * 1024.0;
    if !bytes.is_finite() || bytes < MIB {
        return Err(format!("`{text}` is less than 1MiB"));
    }
    let mib = (bytes / MIB).floor() as u64;
    if mib.is_multiple_of(1024) {
        Ok(format!("{}GiB", mib / 1024))
    } else {
        Ok(format!("{mib}MiB"))
    }
}

/// A CPU limit: a positive number.
pub fn parse_cpus(text: &str) -> Option<f64> {
    let v: f64 = text.trim().parse().ok()?;
    (v.is_finite() && v > 0.0).then_some(v)
}

/// An argv as one string with shell quoting, the form wharf.toml takes for
/// `command` (it splits it again, without a shell).
pub fn shell_join(items: &[String]) -> String {
    shell_words::join(items)
}

/// A port mapping, from compose's short or long syntax or Kamal's `port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMap {
    pub host_ip: Option<String>,
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub udp: bool,
}

impl PortMap {
    /// The wharf.toml form: `host_ip:host_port:container_port[/udp]`, bound
    /// to loopback when the source did not say.
    pub fn render(&self) -> String {
        let ip = self.host_ip.as_deref().unwrap_or("127.0.0.1");
        let ip = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_owned()
        };
        let host = self.host_port.unwrap_or(self.container_port);
        let proto = if self.udp { "/udp" } else { "" };
        format!("{ip}:{host}:{}{proto}", self.container_port)
    }

    /// Bound to every interface, as docker does without a host IP.
    pub fn binds_all(&self) -> bool {
        matches!(self.host_ip.as_deref(), None | Some("0.0.0.0" | "::" | ""))
    }
}

/// `[ip:][host:]container[/proto]`. Ranges (`8000-8010:8000-8010`) are an
/// error: wharf maps single ports.
pub fn parse_port(text: &str) -> Result<PortMap, String> {
    let (spec, proto) = match text.rsplit_once('/') {
        Some((s, p)) => (s, p),
        None => (text, "tcp"),
    };
    let udp = match proto {
        "tcp" => false,
        "udp" => true,
        other => return Err(format!("protocol `{other}` is not supported (tcp or udp)")),
    };
    if spec.contains('-') {
        return Err("port ranges are not supported; list each port".into());
    }
    // An IPv6 host address is bracketed: `[::1]:8080:80`.
    let (host_ip, rest) = if let Some(stripped) = spec.strip_prefix('[') {
        let (ip, rest) = stripped
            .split_once(']')
            .ok_or_else(|| format!("`{text}`: unclosed `[`"))?;
        (Some(ip.to_owned()), rest.trim_start_matches(':'))
    } else {
        (None, spec)
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let port = |s: &str| -> Result<u16, String> {
        s.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("`{s}` is not a port number"))
    };
    let (host_ip, host, container) = match (host_ip, parts.as_slice()) {
        (None, [c]) => (None, None, port(c)?),
        (Some(ip), [h, c]) => (Some(ip), opt_port(h, port)?, port(c)?),
        (None, [h, c]) => (None, opt_port(h, port)?, port(c)?),
        (None, [ip, h, c]) => (Some((*ip).to_owned()), opt_port(h, port)?, port(c)?),
        _ => {
            return Err(format!(
                "`{text}` is not `[host_ip:][host_port:]container_port`"
            ));
        }
    };
    Ok(PortMap {
        host_ip,
        host_port: host,
        container_port: container,
        udp,
    })
}

fn opt_port(s: &str, port: impl Fn(&str) -> Result<u16, String>) -> Result<Option<u16>, String> {
    if s.is_empty() {
        Ok(None)
    } else {
        port(s).map(Some)
    }
}

/// `base.join(rel)` with `.` and `..` resolved by hand (the path need not
/// exist here; it must on the server).
pub fn resolve(base: &Path, rel: &str) -> String {
    let mut out = PathBuf::new();
    for c in base.join(rel).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out.display().to_string()
}

/// A relative path inside the app dir, tidied: `./app/../Dockerfile` is
/// `Dockerfile`, `.` stays `.`. `None` when it leaves the directory or is
/// absolute.
pub fn tidy_relative(path: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    })
}

/// The absolute directory holding `path` (relative paths are taken from the
/// current directory, where the CLI was started).
pub fn abs_dir(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match std::path::absolute(&dir) {
        Ok(abs) => PathBuf::from(resolve(&abs, ".")),
        Err(_) => dir,
    }
}

/// Name of a directory, as an app name source.
pub fn dir_name(dir: &Path) -> Option<String> {
    dir.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// The command that copies an existing docker volume's data into the one
/// wharf mounts.
pub fn volume_copy(from: &str, to: &str) -> String {
    format!("docker run --rm -v {from}:/from -v {to}:/to alpine cp -a /from/. /to")
}

/// What a scalar is, for messages: its text quoted, or what it is instead.
pub fn show(node: &Node) -> String {
    match node.as_str() {
        Some(s) => format!("`{s}`"),
        None => node.describe().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Some(90_000));
        assert_eq!(parse_duration("1.5s"), Some(1500));
        assert_eq!(parse_duration("30"), Some(30_000));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("1h 5m"), Some(3_900_000));
        assert_eq!(parse_duration("abc"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(format_duration(90_000), "1m 30s");
        assert_eq!(format_duration(500), "500ms");
        assert_eq!(format_duration(10_000), "10s");
    }

    #[test]
    fn memory() {
        assert_eq!(parse_memory("512m").unwrap(), "512MiB");
        assert_eq!(parse_memory("1g").unwrap(), "1GiB");
        assert_eq!(parse_memory("1.5G").unwrap(), "1536MiB");
        assert_eq!(parse_memory("2GiB").unwrap(), "2GiB");
        assert_eq!(parse_memory("268435456").unwrap(), "256MiB");
        assert!(parse_memory("100k").is_err());
        assert!(parse_memory("lots").is_err());
    }

    #[test]
    fn ports() {
        let p = parse_port("127.0.0.1:5432:5432").unwrap();
        assert_eq!(p.render(), "127.0.0.1:5432:5432");
        assert!(!p.binds_all());
        let p = parse_port("8080:80").unwrap();
        assert_eq!(p.render(), "127.0.0.1:8080:80");
        assert!(p.binds_all());
        assert_eq!(parse_port("3000").unwrap().container_port, 3000);
        assert_eq!(
            parse_port("[::1]:53:53/udp").unwrap().render(),
            "[::1]:53:53/udp"
        );
        assert!(parse_port("8000-8010:8000-8010").is_err());
        assert!(parse_port("http").is_err());
        assert!(parse_port("1:2:3:4").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(sanitize_name("My_Shop"), "my-shop");
        assert_eq!(sanitize_name("__web__"), "web");
        assert_eq!(sanitize_name("日本"), "");
        assert!(is_valid_name("web-1"));
        let taken = ["web", "web-2"];
        assert_eq!(unique_name("Web", "x", |n| taken.contains(&n)), "web-3");
        assert_eq!(unique_name("日本", "accessory", |_| false), "accessory");
        assert!(!is_valid_name("-web"));
    }

    #[test]
    fn paths() {
        assert_eq!(tidy_relative("./app/../Dockerfile").unwrap(), "Dockerfile");
        assert_eq!(tidy_relative("./").unwrap(), ".");
        assert_eq!(tidy_relative("../x"), None);
        assert_eq!(
            resolve(Path::new("/srv/app"), "./data/../db"),
            "/srv/app/db"
        );
    }
}
