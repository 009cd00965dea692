//! The server's own settings, resolved in layers: the command line, then
//! the environment (both through clap, which the binary owns), then
//! `<data>/server.toml`, then the defaults. Parsing and resolving are pure:
//! [`resolve`] takes the file's text and what the command line said, and
//! returns the settings or every problem at once.
//!
//! ```toml
//! # <data>/server.toml — every key optional
//! listen = "0.0.0.0:80"            # plain HTTP (and ACME HTTP-01)
//! https_listen = "0.0.0.0:443"     # HTTPS; off unless set
//! admin = "127.0.0.1:9180"         # /metrics, /healthz
//! api = "0.0.0.0:7443"             # the API over https, with tokens; off unless set
//! upload_limit_mb = 1024           # the largest app source a client may upload
//! access_log = true
//! trusted_proxies = ["10.0.0.0/8"] # X-Forwarded-* believed from these
//! tunnel_idle_timeout = "5m"       # WebSockets with nothing moving
//! public_url = "https://deploy.example.com:7443"  # commit statuses link here
//! forge_api = "https://git.example.com/api/v1"    # a forge API not at its usual place
//!
//! [acme]
//! directory = "https://acme-v02.api.letsencrypt.org/directory"
//! email = "ops@example.com"
//! ca_roots = ["/etc/wharf/test-ca.pem"]  # extra roots for the ACME server's HTTPS
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The name of the settings file in the data dir.
pub const FILE: &str = "server.toml";

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The resolved settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub listen: SocketAddr,
    /// The HTTPS listener; `None`: none (TLS hosts are served on HTTP only).
    pub https_listen: Option<SocketAddr>,
    pub admin: SocketAddr,
    /// The API over https (tokens); `None`: the unix socket only.
    pub api: Option<SocketAddr>,
    /// Bytes of file content an uploaded source may hold.
    pub upload_limit: u64,
    pub access_log: bool,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub tunnel_idle_timeout: Duration,
    pub acme: AcmeSettings,
    /// This server as the forge's users reach it (statuses link to it).
    pub public_url: Option<String>,
    /// The forge API's base URL, instead of the one guessed from a clone URL.
    pub forge_api: Option<String>,
}

/// How certificates are ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    pub directory: String,
    pub email: Option<String>,
    /// Extra CA roots (PEM files) trusted for the ACME server's HTTPS.
    pub ca_roots: Vec<PathBuf>,
}

/// What the command line (or the environment, through clap) said; `None`:
/// not said, the file or the default decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub https_listen: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub api: Option<SocketAddr>,
    pub upload_limit_mb: Option<u64>,
    /// `--no-access-log`.
    pub no_access_log: bool,
    pub acme_directory: Option<String>,
    pub acme_email: Option<String>,
    pub acme_ca_roots: Vec<PathBuf>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub public_url: Option<String>,
    pub forge_api: Option<String>,
}

/// Every problem with the settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct SettingsError {
    pub problems: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    listen: Option<String>,
    https_listen: Option<String>,
    admin: Option<String>,
    api: Option<String>,
    upload_limit_mb: Option<u64>,
    access_log: Option<bool>,
    trusted_proxies: Option<Vec<String>>,
    tunnel_idle_timeout: Option<String>,
    acme: Option<RawAcme>,
    public_url: Option<String>,
    forge_api: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAcme {
    directory: Option<String>,
    email: Option<String>,
    ca_roots: Option<Vec<String>>,
}

/// The defaults of `wharf server` and `wharf up`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9180";
/// The largest upload, in MiB of file content.
pub const DEFAULT_UPLOAD_LIMIT_MB: u64 = 1024;
const DEFAULT_TUNNEL_IDLE: Duration = Duration::from_secs(300);

/// Reads `<data_dir>/server.toml` (absent is fine) and resolves it under
/// `overrides`.
pub fn load(data_dir: &Path, overrides: &Overrides) -> Result<Settings, SettingsError> {
    let path = data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => resolve(Some((&path, &text)), overrides),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => resolve(None, overrides),
        Err(e) => Err(SettingsError {
            problems: vec![format!(
                "could not read {}: {e}; fix its permissions or remove it",
                path.display()
            )],
        }),
    }
}

/// Resolves the settings: `file` (its path, for messages, and text) under
/// `overrides`. Pure.
pub fn resolve(
    file: Option<(&Path, &str)>,
    overrides: &Overrides,
) -> Result<Settings, SettingsError> {
    let mut problems = Vec::new();
    let (raw, name) = match file {
        None => (RawFile::default(), String::new()),
        Some((path, text)) => {
            let name = path.display().to_string();
            match toml::from_str::<RawFile>(text) {
                Ok(raw) => (raw, name),
                Err(e) => {
                    return Err(SettingsError {
                        problems: vec![format!(
                            "{name}: {}; see `wharf server --help` for its keys",
                            e.to_string().trim()
                        )],
                    });
                }
            }
        }
    };
    let mut addr = |key: &str, value: Option<String>| -> Option<SocketAddr> {
        let value = value?;
        match value.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(format!(
                    "{name}: `{key}` must be an address and port such as \"0.0.0.0:443\", found {value:?}"
                ));
                None
            }
        }
    };
    let listen_file = addr("listen", raw.listen);
    let https_file = addr("https_listen", raw.https_listen);
    let admin_file = addr("admin", raw.admin);
    let api_file = addr("api", raw.api);
    let default = |text: &str| {
        text.parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
    };
    let mut trusted = overrides.trusted_proxies.clone();
    for net in raw.trusted_proxies.unwrap_or_default() {
        match parse_net(&net) {
            Some(n) => trusted.push(n),
            None => problems.push(format!(
                "{name}: `trusted_proxies` must hold networks such as \"10.0.0.0/8\" or addresses, found {net:?}"
            )),
        }
    }
    let tunnel_idle_timeout = match raw.tunnel_idle_timeout {
        None => DEFAULT_TUNNEL_IDLE,
        Some(text) => match humantime::parse_duration(text.trim()) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                problems.push(format!(
                    "{name}: `tunnel_idle_timeout` must be a duration of more than 0 such as \"5m\", found {text:?}"
                ));
                DEFAULT_TUNNEL_IDLE
            }
        },
    };
    let acme = raw.acme.unwrap_or_default();
    let directory = overrides
        .acme_directory
        .clone()
        .or(acme.directory)
        .unwrap_or_else(|| LETS_ENCRYPT.to_owned());
    if !directory.starts_with("https://") {
        problems.push(format!(
            "the ACME directory must be an https:// URL, found {directory:?}"
        ));
    }
    let email = overrides.acme_email.clone().or(acme.email);
    if let Some(email) = &email
        && (!email.contains('@') || email.contains(char::is_whitespace))
    {
        problems.push(format!(
            "the ACME contact email must be an address such as \"ops@example.com\", found {email:?}"
        ));
    }
    let mut ca_roots = overrides.acme_ca_roots.clone();
    ca_roots.extend(
        acme.ca_roots
            .unwrap_or_default()
            .into_iter()
            .map(PathBuf::from),
    );
    let mut url = |key: &str, value: Option<String>| {
        let value = value?;
        if value.starts_with("https://") || value.starts_with("http://") {
            Some(value.trim_end_matches('/').to_owned())
        } else {
            problems.push(format!(
                "{key} = {value:?}: an http:// or https:// URL, e.g. \"https://deploy.example.com:7443\""
            ));
            None
        }
    };
    let public_url = url(
        "public_url",
        overrides.public_url.clone().or(raw.public_url),
    );
    let forge_api = url("forge_api", overrides.forge_api.clone().or(raw.forge_api));
    if !problems.is_empty() {
        return Err(SettingsError { problems });
    }
    Ok(Settings {
        listen: overrides
            .listen
            .or(listen_file)
            .unwrap_or_else(|| default(DEFAULT_LISTEN)),
        https_listen: overrides.https_listen.or(https_file),
        admin: overrides
            .admin
            .or(admin_file)
            .unwrap_or_else(|| default(DEFAULT_ADMIN)),
        api: overrides.api.or(api_file),
        upload_limit: overrides
            .upload_limit_mb
            .or(raw.upload_limit_mb)
            .unwrap_or(DEFAULT_UPLOAD_LIMIT_MB)
            .max(1)
            .saturating_mul(1024 * 1024),
        access_log: !overrides.no_access_log && raw.access_log.unwrap_or(true),
        trusted_proxies: trusted,
        tunnel_idle_timeout,
        acme: AcmeSettings {
            directory,
            email,
            ca_roots,
        },
        public_url,
        forge_api,
    })
}

/// A network ("10.0.0.0/8") or a single address ("10.1.2.3").
pub fn parse_net(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn file(text: &str) -> Result<Settings, SettingsError> {
        resolve(
            Some((Path::new("/d/server.toml"), text)),
            &Overrides::default(),
        )
    }

    #[test]
    fn defaults_without_a_file() {
        let s = resolve(None, &Overrides::default()).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.admin.to_string(), DEFAULT_ADMIN);
        assert_eq!(s.https_listen, None);
        assert!(s.access_log);
        assert!(s.trusted_proxies.is_empty());
        assert_eq!(s.acme.directory, LETS_ENCRYPT);
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let text = r#"
listen = "0.0.0.0:80"
https_listen = "0.0.0.0:443"
trusted_proxies = ["10.0.0.0/8", "192.168.1.7"]
tunnel_idle_timeout = "90s"
access_log = false
[acme]
directory = "https://acme.test/dir"
email = "ops@example.com"
"#;
        let s = file(text).unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:80");
        assert_eq!(s.https_listen.unwrap().to_string(), "0.0.0.0:443");
        assert_eq!(s.trusted_proxies.len(), 2);
        assert_eq!(s.tunnel_idle_timeout, Duration::from_secs(90));
        assert!(!s.access_log);
        assert_eq!(s.acme.email.as_deref(), Some("ops@example.com"));
        let over = Overrides {
            listen: Some("127.0.0.1:8081".parse().unwrap()),
            acme_directory: Some("https://other.test/dir".into()),
            ..Overrides::default()
        };
        let s = resolve(Some((Path::new("/d/server.toml"), text)), &over).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(s.https_listen.unwrap().to_string(), "0.0.0.0:443");
        assert_eq!(s.acme.directory, "https://other.test/dir");
    }

    #[test]
    fn forge_urls_are_urls_and_the_command_line_wins() {
        let text = "public_url = \"https://deploy.test:7443/\"\nforge_api = \"gitea.test/api\"\n";
        let err = resolve(
            Some((Path::new("/d/server.toml"), text)),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("forge_api = \"gitea.test/api\": an http:// or https:// URL"),
            "{err}"
        );
        let over = Overrides {
            forge_api: Some("http://127.0.0.1:9/api/v1".into()),
            ..Overrides::default()
        };
        let s = resolve(Some((Path::new("/d/server.toml"), text)), &over).unwrap();
        assert_eq!(s.public_url.as_deref(), Some("https://deploy.test:7443"));
        assert_eq!(s.forge_api.as_deref(), Some("http://127.0.0.1:9/api/v1"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = file(
            r#"
listen = "localhost"
trusted_proxies = ["ten"]
tunnel_idle_timeout = "0s"
[acme]
directory = "http://insecure.test"
email = "nobody"
"#,
        )
        .unwrap_err();
        assert_eq!(err.problems.len(), 5, "{err}");
        assert!(
            err.problems[0].starts_with("/d/server.toml: `listen` must be"),
            "{err}"
        );
        let err = file("listne = \"0.0.0.0:80\"").unwrap_err();
        assert!(err.to_string().contains("unknown field `listne`"), "{err}");
        assert!(file("listen = [").is_err());
    }

    #[test]
    fn networks_and_single_addresses() {
        assert_eq!(parse_net("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_net("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(parse_net("::1").unwrap().to_string(), "::1/128");
        assert_eq!(parse_net("10.0.0.0/99"), None);
    }
}
