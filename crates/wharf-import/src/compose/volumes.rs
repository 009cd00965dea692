//! Volumes of processes and accessories (short and long syntax), the
//! top-level `volumes` declarations, and where compose kept the data: its
//! named volumes are `<project>_<name>` on the engine, wharf's are
//! `wharf-<app>-<name>`, so every named volume gets a warning with the
//! command that copies the data over.

use crate::common::{Values, join_key, resolve, tidy_relative, volume_copy};
use crate::yaml::{Node, Pos};

use super::Ctx;

/// Named volumes: declared at the top, and used by imported services.
#[derive(Debug, Default)]
pub struct NamedVolumes {
    /// Key, its position, the engine's name for it.
    declared: Vec<(String, Pos, String)>,
    /// Name, where it was first used (and under which key).
    used: Vec<(String, Pos, String)>,
}

/// Compose's project name from a name or a directory: lowercase, only
/// `a-z`, `0-9`, `_` and `-`.
pub fn project_name(raw: &str) -> String {
    raw.to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
        .collect()
}

impl Ctx {
    pub(super) fn top_volumes(&mut self, node: &Node) {
        let Some(map) = node.as_map() else {
            if !node.is_null() {
                self.w.add(
                    node.pos,
                    "volumes",
                    "expected a mapping of volumes; not read, so the services' volumes are taken as `<project>_<name>`",
                );
            }
            return;
        };
        for e in map {
            let mut engine_name = None;
            let mut external = false;
            for f in self.w.map(&e.value, &format!("volumes.{}", e.key)) {
                let k = format!("volumes.{}.{}", e.key, f.key);
                match f.key.as_str() {
                    "name" => engine_name = self.lit(&f.value, &k),
                    "external" => external = f.value.as_bool() == Some(true),
                    "labels" => self.w.add(
                        f.key_pos,
                        k,
                        "wharf labels the volumes it makes itself; these labels are not set, which matters only to tools that look volumes up by them",
                    ),
                    _ => self.w.add(
                        f.key_pos,
                        k,
                        "volume drivers and their options are not supported: wharf makes a local volume, so data kept by this driver (NFS, a cloud disk…) will not be in it",
                    ),
                }
            }
            let engine_name = engine_name.unwrap_or_else(|| {
                if external {
                    e.key.clone()
                } else {
                    format!("{}_{}", self.project, e.key)
                }
            });
            self.volumes
                .declared
                .push((e.key.clone(), e.key_pos, engine_name));
        }
    }

    /// `volumes:` of a service, in wharf's `SOURCE:TARGET[:ro]` form.
    pub(super) fn volumes(&mut self, key: &str, node: &Node, what: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, item) in self.w.list(node, key).iter().enumerate() {
            let k = format!("{key}[{i}]");
            let parsed = if item.as_map().is_some() {
                self.long_volume(&k, item)
            } else {
                self.lit(item, &k)
                    .and_then(|t| self.short_volume(&k, item.pos, &t))
            };
            let Some((source, target, read_only)) = parsed else {
                continue;
            };
            let Some(source) = source else {
                self.w.add(
                    item.pos,
                    k,
                    format!(
                        "an anonymous volume: wharf has none, so {target} is part of the container and its data is lost whenever the {what} is replaced; not carried over: name it, e.g. `data:{target}`, to keep the data"
                    ),
                );
                continue;
            };
            let source = if !looks_like_path(&source) {
                if !self.volumes.used.iter().any(|(n, _, _)| *n == source) {
                    self.volumes
                        .used
                        .push((source.clone(), item.pos, k.clone()));
                }
                source
            } else if source.starts_with('/') {
                source
            } else if source.starts_with('~') {
                self.w.add(
                    item.pos,
                    k,
                    format!("`{source}`: wharf does not expand `~`, so {target} would be empty; not carried over: write the full path"),
                );
                continue;
            } else {
                match tidy_relative(&source) {
                    Some(rel) => format!("./{rel}"),
                    None => {
                        let abs = resolve(&self.base, &source);
                        self.w.add(
                            item.pos,
                            &k,
                            format!(
                                "`{source}` is outside the app directory, so it was resolved to {abs} on this machine; if the server's path differs, {target} will be mounted from the wrong place: check it"
                            ),
                        );
                        abs
                    }
                }
            };
            let ro = if read_only { ":ro" } else { "" };
            out.push(format!("{source}:{target}{ro}"));
        }
        out
    }

    /// `[SOURCE:]TARGET[:MODE]` → (source, target, read-only).
    fn short_volume(
        &mut self,
        key: &str,
        pos: Pos,
        text: &str,
    ) -> Option<(Option<String>, String, bool)> {
        let parts: Vec<&str> = text.split(':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [t] => (None, *t, None),
            [s, t] => (Some(*s), *t, None),
            [s, t, m] => (Some(*s), *t, Some(*m)),
            _ => {
                self.w.add(
                    pos,
                    key,
                    format!("`{text}` is not `SOURCE:TARGET[:MODE]`; not carried over, so nothing is mounted there"),
                );
                return None;
            }
        };
        let mut read_only = false;
        for m in mode.unwrap_or("").split(',').filter(|m| !m.is_empty()) {
            match m {
                "ro" => read_only = true,
                "rw" => {}
                "z" | "Z" => self.w.add(
                    pos,
                    key,
                    format!("SELinux relabelling (`{m}`) is not supported; on an SELinux host the container may be denied access to {target}: relabel the directory by hand"),
                ),
                other => self.w.add(
                    pos,
                    key,
                    format!("volume option `{other}` is not supported; it is mounted without it"),
                ),
            }
        }
        Some((source.map(str::to_owned), target.to_owned(), read_only))
    }

    fn long_volume(&mut self, key: &str, node: &Node) -> Option<(Option<String>, String, bool)> {
        let mut kind = "volume".to_owned();
        let mut source = None;
        let mut target = None;
        let mut read_only = false;
        for e in node.as_map().unwrap_or_default() {
            let k = join_key(key, &e.key);
            match e.key.as_str() {
                "type" => kind = self.lit(&e.value, &k)?,
                "source" => source = self.lit(&e.value, &k),
                "target" => target = self.lit(&e.value, &k),
                "read_only" => read_only = e.value.as_bool().unwrap_or(false),
                "volume" if e.value.get("nocopy").and_then(Node::as_bool) == Some(true) => {
                    self.w.add(
                        e.key_pos,
                        k,
                        "wharf does not set `nocopy`: when the volume is new, the engine copies the image's files at the target into it first",
                    );
                }
                "bind" => self.w.add(
                    e.key_pos,
                    k,
                    "bind options are not supported; the path is bind-mounted with the engine's defaults (it must exist on the server)",
                ),
                _ => self.w.add(
                    e.key_pos,
                    k,
                    "not supported by wharf; the volume is mounted without it",
                ),
            }
        }
        let Some(target) = target else {
            self.w.add(
                node.pos,
                key,
                "no `target`; not carried over, so nothing is mounted",
            );
            return None;
        };
        match kind.as_str() {
            "volume" | "bind" => Some((source, target, read_only)),
            "tmpfs" => {
                self.w.add(
                    node.pos,
                    key,
                    format!("wharf has no tmpfs mounts; not carried over, so {target} is an ordinary directory of the container, on disk rather than in memory"),
                );
                None
            }
            _ => {
                self.w.add(
                    node.pos,
                    key,
                    format!("`type: {kind}` is not supported by wharf (named volumes and host paths are); not carried over, so nothing is mounted at {target}"),
                );
                None
            }
        }
    }

    /// One warning per named volume used: compose's data is in a volume of
    /// another name.
    pub(super) fn volume_warnings(&mut self) {
        for (name, pos, key) in std::mem::take(&mut self.volumes.used) {
            let declared = self
                .volumes
                .declared
                .iter()
                .find(|(k, _, _)| *k == name)
                .cloned();
            let (pos, key, from) = match declared {
                Some((k, p, engine)) => (p, format!("volumes.{k}"), engine),
                None => (pos, key, format!("{}_{name}", self.project)),
            };
            let to = format!("wharf-{}-{name}", self.app);
            self.w.add(
                pos,
                key,
                format!(
                    "compose keeps this data in the docker volume `{from}`; wharf mounts `{to}` instead, which starts empty, so what is stored there now (a database, uploads) will not be seen by the app: before the first deploy, stop the compose project and copy it with `{}`",
                    volume_copy(&from, &to)
                ),
            );
        }
    }
}

/// A host path rather than a volume name (compose's rule: it starts with
/// `.`, `/` or `~`).
pub fn looks_like_path(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/') || source.starts_with('~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names() {
        assert_eq!(project_name("My Plausible.CE"), "myplausiblece");
        assert_eq!(project_name("shop_v2-prod"), "shop_v2-prod");
        assert!(looks_like_path("./data"));
        assert!(!looks_like_path("data"));
    }
}
