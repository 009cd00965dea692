//! A service's environment: `environment` values after compose's
//! interpolation (plain values, secrets read from the server's environment,
//! defaults), `env_file`, `secrets` (files under `/run/secrets`), and the
//! env values that name a service by a hostname wharf does not keep.

use crate::common::{Values, join_key, resolve};
use crate::model::{Secret, set};
use crate::yaml::{Kind, Node, Pos};

use super::Ctx;
use super::interp::{Source, describe, quoted, resolve as interpolate};

/// An environment entry of a service, once read.
#[derive(Debug)]
pub enum EnvValue {
    Plain(String),
    Secret(Secret),
}

impl Ctx {
    /// A mapping (`KEY: value`) or a list (`- KEY=value`, `- KEY`) as
    /// key/value pairs; `None` for a key without a value.
    pub(super) fn pairs(&mut self, key: &str, node: &Node) -> Vec<(String, Pos, Option<Node>)> {
        let mut out = Vec::new();
        if let Some(map) = node.as_map() {
            for e in map {
                let v = (!e.value.is_null()).then(|| e.value.clone());
                out.push((e.key.clone(), e.key_pos, v));
            }
        } else if let Some(items) = node.as_seq() {
            for item in items {
                let Some(text) = item.as_str() else {
                    self.w.add(
                        item.pos,
                        key,
                        format!(
                            "expected `KEY=value`, found {}; not carried over, so the service starts without it",
                            item.describe()
                        ),
                    );
                    continue;
                };
                match text.split_once('=') {
                    Some((k, v)) => out.push((
                        k.to_owned(),
                        item.pos,
                        Some(Node {
                            pos: item.pos,
                            kind: Kind::Scalar {
                                text: v.to_owned(),
                                quoted: true,
                            },
                        }),
                    )),
                    None => out.push((text.to_owned(), item.pos, None)),
                }
            }
        } else if !node.is_null() {
            self.w.add(
                node.pos,
                key,
                format!(
                    "expected a mapping or a list, found {}; not carried over, so the service starts without these variables",
                    node.describe()
                ),
            );
        }
        out
    }

    /// `environment:` of a service. `table` prefixes `env` and `secrets` in
    /// wharf.toml: empty for the app's, `accessories.NAME.` for an
    /// accessory's.
    pub(super) fn environment(
        &mut self,
        key: &str,
        node: &Node,
        table: &str,
    ) -> Vec<(String, EnvValue)> {
        let mut out = Vec::new();
        for (k, kpos, v) in self.pairs(key, node) {
            let item_key = join_key(key, &k);
            if !self.w.env_key(kpos, &item_key, &k) {
                continue;
            }
            let (text, pos) = match &v {
                Some(v) => match self.w.scalar(v, &item_key) {
                    Some(t) => (t.to_owned(), v.pos),
                    None => continue,
                },
                // `- KEY`: compose passes KEY through from its environment
                // (or .env).
                None => (format!("${{{k}}}"), kpos),
            };
            if let Some(value) = self.env_value(&k, &text, v.is_none(), pos, &item_key, table) {
                set(&mut out, &k, value);
            }
        }
        out
    }

    fn env_value(
        &mut self,
        k: &str,
        text: &str,
        bare: bool,
        pos: Pos,
        item_key: &str,
        table: &str,
    ) -> Option<EnvValue> {
        let r = interpolate(text, &self.vars);
        let shown = if bare {
            format!("`{k}` without a value")
        } else {
            format!("`{text}`")
        };
        let secret_env = |var: &str| {
            format!(
                "added as [{table}secrets] {k} = {{ env = \"{var}\" }}: export `{var}` in the wharf server's environment, or every deploy fails until it is set"
            )
        };
        if r.uses.is_empty() {
            let value = r.text.unwrap_or_default();
            // The value is never repeated in the warning.
            if looks_secret(k, &value) {
                self.w.add(
                    pos,
                    item_key,
                    format!(
                        "`{k}` looks like a secret, so its value was not written to wharf.toml: {}, set to the value written here (or move it to [{table}env] if it is not a secret)",
                        secret_env(k)
                    ),
                );
                return Some(EnvValue::Secret(Secret::Env(k.to_owned())));
            }
            return Some(EnvValue::Plain(value));
        }
        let secretish = |value: &str| {
            looks_secret(k, value) || r.uses.iter().any(|u| looks_secret(&u.name, "x"))
        };
        if let Some(var) = &r.only_var {
            match &r.text {
                None => {
                    let how = if bare {
                        format!("compose passes {shown} through from the environment it runs in")
                    } else {
                        format!("compose reads {shown} from the environment it runs in")
                    };
                    self.w.add(
                        pos,
                        item_key,
                        format!("{how} (`{var}` is not in .env); wharf reads it from the wharf server's environment at deploy time: {}", secret_env(var)),
                    );
                    return Some(EnvValue::Secret(Secret::Env(var.clone())));
                }
                Some(value) if secretish(value) => {
                    self.w.add(
                        pos,
                        item_key,
                        format!("compose takes {shown} from .env, and it looks like a secret, so its value was not written to wharf.toml: {}, set to its value in .env", secret_env(var)),
                    );
                    return Some(EnvValue::Secret(Secret::Env(var.clone())));
                }
                Some(value) => {
                    self.w.add(
                        pos,
                        item_key,
                        format!("{shown} was written as `{value}`, the value of `{var}` in .env: wharf does not interpolate, so setting `{var}` on the server will no longer change it"),
                    );
                    return Some(EnvValue::Plain(value.clone()));
                }
            }
        }
        let var = r.whole.clone().unwrap_or_else(|| k.to_owned());
        match &r.text {
            None => {
                let unset = r.names(&Source::Unset);
                self.w.add(
                    pos,
                    item_key,
                    format!(
                        "{shown} needs {} from the environment compose runs in, which is not in .env: {}, set to the whole value",
                        quoted(&unset),
                        secret_env(k)
                    ),
                );
                Some(EnvValue::Secret(Secret::Env(k.to_owned())))
            }
            Some(value) if secretish(value) => {
                self.w.add(
                    pos,
                    item_key,
                    format!(
                        "{shown} looks like a secret, so the value compose would give it ({}) was not written to wharf.toml: {} (wharf has no defaults for env vars)",
                        describe(&r.uses),
                        secret_env(&var)
                    ),
                );
                Some(EnvValue::Secret(Secret::Env(var)))
            }
            Some(value) => {
                let names = r.names(&Source::Default);
                let names = if names.is_empty() {
                    r.names(&Source::DotEnv)
                } else {
                    names
                };
                self.w.add(
                    pos,
                    item_key,
                    format!(
                        "wharf has no env var with a default: {shown} was written as `{value}` ({}), so setting {} on the server will no longer override it; to keep it configurable, make it [{table}secrets] {k} = {{ env = \"{var}\" }} and export `{var}` there",
                        describe(&r.uses),
                        quoted(&names)
                    ),
                );
                Some(EnvValue::Plain(value.clone()))
            }
        }
    }

    /// `env_file:` (a path, a list, or `{ path, required, format }` items),
    /// relative to the app directory as wharf reads them.
    pub(super) fn env_files(&mut self, key: &str, node: &Node) -> Vec<String> {
        let items: Vec<(String, &Node)> = match node.as_seq() {
            Some(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("{key}[{i}]"), n))
                .collect(),
            None => vec![(key.to_owned(), node)],
        };
        let mut out = Vec::new();
        for (k, item) in items {
            let path_node = match item.as_map() {
                Some(_) => {
                    for f in item.as_map().unwrap_or_default() {
                        let fk = join_key(&k, &f.key);
                        match f.key.as_str() {
                            "path" => {}
                            "required" if f.value.as_bool() == Some(false) => self.w.add(
                                f.key_pos,
                                fk,
                                "wharf reads every env file at deploy time and fails the deploy when one is missing (compose skipped it): create the file, even empty",
                            ),
                            "required" => {}
                            "format" => self.w.add(
                                f.key_pos,
                                fk,
                                "wharf reads env files as dotenv, expanding `${VAR}`; a `raw` file's `$` values will be expanded: escape them as `\\$`",
                            ),
                            _ => self.w.add(f.key_pos, fk, "not a key of `env_file`; ignored, which changes nothing wharf does"),
                        }
                    }
                    item.get("path")
                }
                None => Some(item),
            };
            let Some(path_node) = path_node else {
                self.w.add(item.pos, k, "no `path`; not carried over, so the service starts without this file's variables");
                continue;
            };
            let Some(path) = self.lit(path_node, &k) else {
                continue;
            };
            match crate::common::tidy_relative(&path) {
                Some(p) => out.push(p),
                None if path.starts_with('/') => out.push(path),
                None => {
                    let abs = resolve(&self.base, &path);
                    self.w.add(
                        path_node.pos,
                        k,
                        format!("`{path}` is outside the app directory, where wharf reads env files; not carried over, so the service starts without its variables: copy {abs} next to wharf.toml and list it here"),
                    );
                }
            }
        }
        out
    }

    /// Service `secrets:` (files mounted at `/run/secrets/NAME`) as wharf
    /// secrets, which are env vars. A `X_FILE=/run/secrets/NAME` variable
    /// (the convention of the official images) becomes `X` itself.
    pub(super) fn service_secrets(
        &mut self,
        key: &str,
        node: &Node,
        env: &mut Vec<(String, EnvValue)>,
    ) {
        let Some(items) = node.as_seq() else {
            self.w.add(
                node.pos,
                key,
                format!(
                    "expected a list of secret names, found {}; not carried over, so the service starts without them",
                    node.describe()
                ),
            );
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            let (source, target) = match (item.as_str(), item.get("source").and_then(Node::as_str))
            {
                (Some(s), _) => (s.to_owned(), s.to_owned()),
                (None, Some(s)) => {
                    let target = item
                        .get("target")
                        .and_then(Node::as_str)
                        .unwrap_or(s)
                        .to_owned();
                    (s.to_owned(), target)
                }
                (None, None) => {
                    self.w.add(
                        item.pos,
                        item_key,
                        "expected a secret name; not carried over, so the service starts without it",
                    );
                    continue;
                }
            };
            let Some(secret) = self
                .top_secrets
                .iter()
                .find(|(n, _)| *n == source)
                .map(|(_, s)| s.clone())
            else {
                self.w.add(
                    item.pos,
                    item_key,
                    format!("no top-level secret `{source}` is defined (compose refuses this file too); not carried over, so the service starts without it"),
                );
                continue;
            };
            let Some(secret) = secret else {
                self.w.add(
                    item.pos,
                    item_key,
                    format!("the top-level secret `{source}` could not be carried over (see its warning), so the service starts without it"),
                );
                continue;
            };
            let mount = if target.starts_with('/') {
                target.clone()
            } else {
                format!("/run/secrets/{target}")
            };
            let via_file_var = env.iter().position(|(k, v)| {
                k.ends_with("_FILE") && matches!(v, EnvValue::Plain(p) if *p == mount)
            });
            let var = match via_file_var {
                Some(idx) => {
                    let (file_key, _) = env.remove(idx);
                    file_key.trim_end_matches("_FILE").to_owned()
                }
                None => secret_var_name(&source),
            };
            let from = match &secret {
                Secret::Env(v) => format!("the server's environment variable `{v}`"),
                Secret::File(f) => format!("the file {f} on the server"),
            };
            let how = match via_file_var {
                Some(_) => format!(
                    "compose mounted it as {mount} for `{var}_FILE`; wharf passes its value directly as `{var}`, from {from}: nothing to change if the image reads `{var}` as well (the official images do)"
                ),
                None => format!(
                    "compose mounted it as the file {mount}; wharf passes its value as the env var `{var}` instead, from {from}, and {mount} will not exist: make the app read the variable"
                ),
            };
            self.w.add(item.pos, item_key, how);
            set(env, &var, EnvValue::Secret(secret));
        }
    }

    pub(super) fn top_secrets(&mut self, node: &Node) {
        let Some(map) = node.as_map() else {
            self.w.add(
                node.pos,
                "secrets",
                "expected a mapping of secrets; not carried over, so services using them start without them",
            );
            return;
        };
        for e in map {
            let key = format!("secrets.{}", e.key);
            let mut source = None;
            for f in e.value.as_map().unwrap_or_default() {
                let k = join_key(&key, &f.key);
                match f.key.as_str() {
                    "file" => {
                        if let Some(p) = self.lit(&f.value, &k) {
                            let abs = if p.starts_with('/') {
                                p.clone()
                            } else {
                                let abs = resolve(&self.base, &p);
                                self.w.add(
                                    f.value.pos,
                                    &k,
                                    format!(
                                        "`{p}` resolved to {abs}: wharf reads secret files by absolute path on the server at deploy time, and a deploy fails while it is not there"
                                    ),
                                );
                                abs
                            };
                            source = Some(Secret::File(abs));
                        }
                    }
                    "environment" => {
                        source = self.lit(&f.value, &k).map(Secret::Env);
                    }
                    "external" => self.w.add(
                        f.key_pos,
                        k,
                        "external secrets (swarm) are not supported, so services using this one start without it: use `file` or `environment`",
                    ),
                    _ => self.w.add(
                        f.key_pos,
                        k,
                        "not supported by wharf; not carried over, which changes nothing for services reading the secret from `file` or `environment`",
                    ),
                }
            }
            if e.value.as_map().is_none() {
                self.w.add(
                    e.value.pos,
                    &key,
                    "expected `file:` or `environment:`; not carried over, so services using it start without it",
                );
            }
            self.top_secrets.push((e.key.clone(), source));
        }
    }
}

/// Adds a secret to the app's `[secrets]`, shared by every process.
pub fn add_secret(
    w: &mut crate::common::Warnings,
    secrets: &mut Vec<(String, Secret)>,
    key: &str,
    secret: Secret,
    pos: Pos,
    svc: &str,
) {
    match secrets.iter().find(|(k, _)| k == key) {
        Some((_, existing)) if *existing != secret => w.add(
            pos,
            format!("{svc}.environment.{key}"),
            "another service takes this secret from elsewhere, and wharf's [secrets] are shared by all processes; the first one was kept, so this service gets that value instead",
        ),
        Some(_) => {}
        None => secrets.push((key.to_owned(), secret)),
    }
}

/// Whether `text` mentions the hostname `name`: not as part of a longer
/// name (`db` is in `postgres://u@db:5432/x`, not in `dbname=x`).
pub fn mentions(text: &str, name: &str) -> bool {
    let host_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let rest = &text[at + name.len()..];
        let after_ok = match rest.chars().next() {
            None => true,
            // A trailing dot ends a name; `db.example.com` is another host.
            Some('.') => !rest[1..].starts_with(|c: char| c.is_ascii_alphanumeric()),
            Some(c) => !host_char(c),
        };
        before.is_none_or(|c| !host_char(c)) && after_ok
    })
}

/// Whether a literal env value is a credential by the look of its key:
/// the key names a password, secret, token or key (`DB_PASSWORD`,
/// `AWS_SECRET_ACCESS_KEY`, `GITHUB_TOKEN`, `STRIPE_API_KEY`, `SMTP_PASS`,
/// `CREDENTIALS`…) rather than something about one (`…_FILE`, `…_URL`,
/// `…_USER`, `…_KEY_ID`, `…_PUBLIC_KEY`, `…_TTL`…). A value that is a flag
/// (`MYSQL_RANDOM_ROOT_PASSWORD=yes`, `SECRET_KEY_BASE_DUMMY=1`) or an
/// absolute path (`GOOGLE_APPLICATION_CREDENTIALS=/run/gcp.json`) is not one.
pub fn looks_secret(key: &str, value: &str) -> bool {
    const MARKERS: &[&str] = &[
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "SECRET",
        "TOKEN",
        "APIKEY",
        "API_KEY",
        "PRIVATE_KEY",
        "ACCESS_KEY",
        "CREDENTIAL",
    ];
    /// A last word that makes the key a secret on its own (`SMTP_PASS`).
    const SECRET_LAST: &[&str] = &["KEY", "PASS", "PWD"];
    /// A last word that says something about a secret rather than being it.
    const ABOUT_LAST: &[&str] = &[
        "FILE",
        "PATH",
        "DIR",
        "URL",
        "URI",
        "ENDPOINT",
        "HOST",
        "PORT",
        "USER",
        "USERNAME",
        "NAME",
        "ID",
        "TTL",
        "EXPIRY",
        "EXPIRATION",
        "LIFETIME",
        "TIMEOUT",
        "LENGTH",
        "HEADER",
        "TYPE",
        "ALGORITHM",
        "METHOD",
        "POLICY",
        "ENABLED",
        "DISABLED",
        "REQUIRED",
        "DUMMY",
    ];
    /// `…_KEY`s that are not secret: public halves, lookup keys.
    const PUBLIC_KEYS: &[&str] = &[
        "PUBLIC",
        "PUBLISHABLE",
        "SITE",
        "CACHE",
        "SORT",
        "PARTITION",
        "PRIMARY",
        "ROUTING",
    ];
    const FLAGS: &[&str] = &["true", "false", "yes", "no", "on", "off", "0", "1"];

    let value = value.trim();
    if url_has_password(value) {
        return true;
    }
    if value.is_empty()
        || FLAGS.iter().any(|f| value.eq_ignore_ascii_case(f))
        || (value.starts_with('/') && !value.contains(char::is_whitespace))
    {
        return false;
    }
    let key = key.to_ascii_uppercase();
    let words: Vec<&str> = key.split('_').filter(|w| !w.is_empty()).collect();
    let (last, before) = match words.as_slice() {
        [.., before, last] => (*last, Some(*before)),
        [last] => (*last, None),
        [] => return false,
    };
    if ABOUT_LAST.contains(&last)
        || key.ends_with("_EXPIRES_IN")
        || (last == "KEY" && before.is_some_and(|b| PUBLIC_KEYS.contains(&b)))
    {
        return false;
    }
    MARKERS.iter().any(|m| key.contains(m)) || (before.is_some() && SECRET_LAST.contains(&last))
}

/// Whether a value is a URL that carries a password in its user info
/// (`postgres://app:s3cret@db/app`), whatever its key is called.
fn url_has_password(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .is_some_and(|(_, password)| !password.is_empty())
}

/// A secret's env var name: `db_password` → `DB_PASSWORD`.
fn secret_var_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.chars().next().is_none_or(|c| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_mentions() {
        assert!(mentions(
            "postgres://u:p@plausible_db:5432/x",
            "plausible_db"
        ));
        assert!(mentions("plausible_db", "plausible_db"));
        assert!(mentions("http://web_app.:3000", "web_app"));
        assert!(!mentions("plausible_db_name", "plausible_db"));
        assert!(!mentions("my_plausible_db", "plausible_db"));
        assert!(!mentions("plausible_db.example.com", "plausible_db"));
    }

    #[test]
    fn secret_looking_keys() {
        let table: &[(&str, &str, bool)] = &[
            // Secrets by their key.
            ("POSTGRES_PASSWORD", "hunter2", true),
            ("PGPASSWORD", "hunter2", true),
            ("db_password", "hunter2", true),
            ("LDAP_BIND_PASSWD", "x", true),
            ("SSH_KEY_PASSPHRASE", "x", true),
            ("SECRET_KEY_BASE", "abc", true),
            ("OAUTH_CLIENT_SECRET", "abc", true),
            ("AWS_SECRET_ACCESS_KEY", "abc", true),
            ("GITHUB_TOKEN", "ghp_x", true),
            ("STRIPE_API_KEY", "sk_live_x", true),
            ("SENDGRID_APIKEY", "SG.x", true),
            ("JWT_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----", true),
            ("MINIO_ACCESS_KEY", "x", true),
            // A URL with a password in it, whatever its key.
            ("DATABASE_URL", "postgres://app:pw@db:5432/app", true),
            ("CACHE", "redis://:pw@redis:6379/0", true),
            ("DATABASE_URL", "mysql://tickets@mariadb/tickets", false),
            ("REDIS_URL", "redis://redis:6379", false),
            ("SMTP_CREDENTIALS", "u:p", true),
            ("ENCRYPTION_KEY", "x", true),
            ("SMTP_PASS", "x", true),
            ("DB_PWD", "x", true),
            ("POSTGRES_PASSWORD", "12345", true),
            // About a secret, not one.
            ("POSTGRES_PASSWORD_FILE", "/run/secrets/db", false),
            ("SECRETS_DIR", "secrets", false),
            ("AWS_ACCESS_KEY_ID", "AKIA", false),
            ("JWT_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----", false),
            ("STRIPE_PUBLISHABLE_KEY", "pk_live_x", false),
            ("RECAPTCHA_SITE_KEY", "x", false),
            ("CACHE_KEY", "v2", false),
            ("OAUTH_TOKEN_URL", "https://example.com/token", false),
            ("SECRET_HOST", "vault", false),
            ("SMTP_PASSWORD_PORT", "25", false),
            ("DB_PASSWORD_USER", "app", false),
            ("TOKEN_NAME", "x", false),
            ("ACCESS_TOKEN_TTL", "3600", false),
            ("ACCESS_TOKEN_EXPIRES_IN", "15m", false),
            ("PASSWORD_MIN_LENGTH", "8", false),
            ("SECRET_KEY_BASE_DUMMY", "x", false),
            // Flags, paths and empty values.
            ("SECRET_KEY_BASE_DUMMY", "1", false),
            ("MYSQL_RANDOM_ROOT_PASSWORD", "yes", false),
            ("MYSQL_ALLOW_EMPTY_PASSWORD", "TRUE", false),
            ("TOKENIZERS_PARALLELISM", "false", false),
            (
                "GOOGLE_APPLICATION_CREDENTIALS",
                "/run/secrets/gcp.json",
                false,
            ),
            ("POSTGRES_PASSWORD", "", false),
            ("POSTGRES_PASSWORD", "  ", false),
            // Neither.
            ("KEY", "x", false),
            ("PWD", "srv", false),
            ("PASS", "x", false),
            ("BYPASS", "x", false),
            ("DATABASE_URL", "postgres://u@db/x", false),
            ("POSTGRES_USER", "shop", false),
            ("RAILS_ENV", "production", false),
        ];
        for (key, value, expected) in table {
            assert_eq!(
                looks_secret(key, value),
                *expected,
                "looks_secret({key:?}, {value:?})"
            );
        }
    }

    #[test]
    fn secret_names() {
        assert_eq!(secret_var_name("db_password"), "DB_PASSWORD");
        assert_eq!(secret_var_name("1key"), "_1KEY");
    }
}
