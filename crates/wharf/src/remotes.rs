//! The user's side of remote servers, in `$XDG_CONFIG_HOME/wharf/`
//! (default `~/.config/wharf/`):
//!
//! - `remotes.toml`: named servers (`wharf remote add prod URL`), each with
//!   its URL and, for `https://`, optionally its token (the file is 0600);
//! - `known_servers`: one `host:port FINGERPRINT` line per `https://`
//!   server whose certificate was pinned on first use.
//!
//! A server address is `https://host:port` or `ssh://[user@]host[:port][/data-dir]`;
//! [`parse_url`] reads one (pure).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A server address, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Url {
    Https {
        host: String,
        port: u16,
    },
    Ssh {
        destination: String,
        port: Option<u16>,
        data_dir: Option<String>,
    },
}

/// The port of `https://host` without one.
pub const DEFAULT_API_PORT: u16 = 7443;

/// Reads `https://host[:port]` or `ssh://[user@]host[:port][/data-dir]`.
pub fn parse_url(text: &str) -> Result<Url, String> {
    let bad = |why: &str| {
        format!(
            "`{text}` is not a server address: {why}; write https://HOST:PORT or ssh://USER@HOST[:PORT][/DATA-DIR]"
        )
    };
    let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h))
            if !u.is_empty()
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) =>
        {
            (Some(u), h)
        }
        Some((u, _)) if !u.is_empty() => return Err(bad("a user name with odd characters")),
        Some(_) => return Err(bad("an empty user")),
        None => (None, authority),
    };
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let (h, after) = inner
            .split_once(']')
            .ok_or_else(|| bad("an unclosed `[`"))?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
    {
        return Err(bad(
            "no host, or a host with characters a host name does not have",
        ));
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
        ),
        None => None,
    };
    match scheme {
        "https" => {
            if user.is_some() {
                return Err(bad("https:// takes a token, not a user"));
            }
            if path.is_some_and(|p| p != "/") {
                return Err(bad("https:// takes no path"));
            }
            Ok(Url::Https {
                host: host.to_owned(),
                port: port.unwrap_or(DEFAULT_API_PORT),
            })
        }
        "ssh" => {
            let destination = match user {
                Some(u) => format!("{u}@{host}"),
                None => host.to_owned(),
            };
            Ok(Url::Ssh {
                destination,
                port,
                data_dir: path.filter(|p| *p != "/").map(str::to_owned),
            })
        }
        other => Err(bad(&format!("the scheme `{other}` is not https or ssh"))),
    }
}

/// `$XDG_CONFIG_HOME/wharf`, else `~/.config/wharf`.
pub fn config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("wharf"))
}

/// One named server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remote {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RemotesFile {
    #[serde(default)]
    remotes: BTreeMap<String, Remote>,
}

/// The named servers.
pub fn load_remotes(dir: &Path) -> Result<BTreeMap<String, Remote>, String> {
    let path = dir.join("remotes.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str::<RemotesFile>(&text)
            .map(|f| f.remotes)
            .map_err(|e| format!("could not read {}: {e}; fix or remove it", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("could not read {}: {e}", path.display())),
    }
}

pub fn save_remotes(dir: &Path, remotes: &BTreeMap<String, Remote>) -> Result<(), String> {
    let text = toml::to_string(&RemotesFile {
        remotes: remotes.clone(),
    })
    .map_err(|e| e.to_string())?;
    write_private(&dir.join("remotes.toml"), text.as_bytes())
}

/// The pinned fingerprint of `host:port`, if any.
pub fn known_fingerprint(dir: &Path, server: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("known_servers")).ok()?;
    text.lines().find_map(|line| {
        let (s, fp) = line.split_once(' ')?;
        (s == server).then(|| fp.trim().to_owned())
    })
}

/// Pins `fingerprint` for `server` (`host:port`), replacing an old pin;
/// `None` forgets it. Returns whether a pin was there before.
pub fn set_fingerprint(
    dir: &Path,
    server: &str,
    fingerprint: Option<&str>,
) -> Result<bool, String> {
    let path = dir.join("known_servers");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut had = false;
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| {
            let mine = l.split_once(' ').is_some_and(|(s, _)| s == server);
            had |= mine;
            !mine && !l.trim().is_empty()
        })
        .map(str::to_owned)
        .collect();
    if let Some(fp) = fingerprint {
        lines.push(format!("{server} {fp}"));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    write_private(&path, out.as_bytes())?;
    Ok(had)
}

/// Writes `bytes` to `path` through a temp file, mode 0600.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("could not create {}: {e}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let fail = |e: std::io::Error| format!("could not write {}: {e}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok: &[(&str, Url)] = &[
            (
                "https://deploy.example.com:8443",
                Url::Https {
                    host: "deploy.example.com".into(),
                    port: 8443,
                },
            ),
            (
                "https://10.0.0.5",
                Url::Https {
                    host: "10.0.0.5".into(),
                    port: DEFAULT_API_PORT,
                },
            ),
            (
                "https://[::1]:9000/",
                Url::Https {
                    host: "::1".into(),
                    port: 9000,
                },
            ),
            (
                "ssh://deploy@203.0.113.9",
                Url::Ssh {
                    destination: "deploy@203.0.113.9".into(),
                    port: None,
                    data_dir: None,
                },
            ),
            (
                "ssh://root@127.0.0.1:2222/var/lib/wharf",
                Url::Ssh {
                    destination: "root@127.0.0.1".into(),
                    port: Some(2222),
                    data_dir: Some("/var/lib/wharf".into()),
                },
            ),
        ];
        for (text, url) in ok {
            assert_eq!(parse_url(text).as_ref(), Ok(url), "{text}");
        }
        for bad in [
            "deploy.example.com",
            "http://x:1",
            "https://",
            "https://x:0",
            "https://x:99999",
            "https://u@x",
            "https://x/path",
            "ssh://@x",
            "ssh://x y",
            "ssh://x;rm -rf /",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pins_are_kept_replaced_and_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(known_fingerprint(dir.path(), "a:1"), None);
        assert!(!set_fingerprint(dir.path(), "a:1", Some("AA")).expect("pin"));
        set_fingerprint(dir.path(), "b:2", Some("BB")).expect("pin");
        assert_eq!(known_fingerprint(dir.path(), "a:1").as_deref(), Some("AA"));
        assert!(set_fingerprint(dir.path(), "a:1", Some("CC")).expect("pin"));
        assert_eq!(known_fingerprint(dir.path(), "a:1").as_deref(), Some("CC"));
        assert!(set_fingerprint(dir.path(), "a:1", None).expect("forget"));
        assert_eq!(known_fingerprint(dir.path(), "a:1"), None);
        assert_eq!(known_fingerprint(dir.path(), "b:2").as_deref(), Some("BB"));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("known_servers"))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
