//! `env`: `clear` values and `secret` names (read from the server's
//! environment instead of `.kamal/secrets`), for the app, a role or an
//! accessory.

use crate::common::{Values, is_env_key, join_key};
use crate::model::{Secret, set};
use crate::yaml::Node;

use super::Ctx;

/// `[secrets]`-style pairs: env var name and where its value comes from.
pub type Secrets = Vec<(String, Secret)>;

impl Ctx {
    /// `env`: `clear` and `secret` (and `tags`), or a plain mapping, which
    /// Kamal takes as `clear`.
    pub(super) fn env(&mut self, key: &str, node: &Node) -> (Vec<(String, String)>, Secrets) {
        let mut clear = Vec::new();
        let mut secrets = Vec::new();
        let map = self.w.map(node, key);
        if map.is_empty() {
            return (clear, secrets);
        }
        let structured = map
            .iter()
            .any(|e| matches!(e.key.as_str(), "clear" | "secret" | "tags"));
        if !structured {
            self.clear(key, node, &mut clear);
            return (clear, secrets);
        }
        for e in map {
            let k = join_key(key, &e.key);
            match e.key.as_str() {
                "clear" => self.clear(&k, &e.value, &mut clear),
                "secret" => self.secrets(&k, &e.value, &mut secrets),
                "tags" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf has no host tags (it deploys to one machine); not carried over, so these values are not set anywhere: move the ones you need into [env] or a process's `env`",
                ),
                _ => self.w.add(e.key_pos, k, "not `clear`, `secret` or `tags`; not carried over, so these variables are not set"),
            }
        }
        (clear, secrets)
    }

    fn clear(&mut self, key: &str, node: &Node, out: &mut Vec<(String, String)>) {
        for e in self.w.map(node, key) {
            let k = join_key(key, &e.key);
            if !self.w.env_key(e.key_pos, &k, &e.key) {
                continue;
            }
            if e.value.is_null() {
                set(out, &e.key, String::new());
                continue;
            }
            if let Some(v) = self.lit(&e.value, &k) {
                set(out, &e.key, v);
            }
        }
    }

    /// `secret: [KEY, KEY:ALIAS]` → `KEY = { env = "ALIAS" }`, with one
    /// warning for the list: the values now come from elsewhere.
    fn secrets(&mut self, key: &str, node: &Node, out: &mut Vec<(String, Secret)>) {
        let Some(items) = node.as_seq() else {
            if !node.is_null() {
                self.w.add(
                    node.pos,
                    key,
                    format!(
                        "expected a list of names, found {}; not carried over, so these secrets are not set",
                        node.describe()
                    ),
                );
            }
            return;
        };
        let mut names = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(text) = self.lit(item, &format!("{key}[{i}]")) else {
                continue;
            };
            let (var, from) = match text.split_once(':') {
                Some((v, f)) => (v.to_owned(), f.to_owned()),
                None => (text.clone(), text.clone()),
            };
            if !is_env_key(&var) || !is_env_key(&from) {
                self.w.add(
                    item.pos,
                    format!("{key}[{i}]"),
                    format!("`{text}` is not `KEY` or `KEY:SECRET_NAME`; not carried over, so this secret is not set"),
                );
                continue;
            }
            names.push(format!("`{from}`"));
            set(out, &var, Secret::Env(from));
        }
        if !names.is_empty() {
            self.w.add(
                node.pos,
                key,
                format!(
                    "Kamal reads these from .kamal/secrets; wharf reads them from the wharf server's environment when it deploys, and every deploy fails until they are set: export {} there (or change them to {{ file = \"/path\" }})",
                    names.join(", ")
                ),
            );
        }
    }
}
