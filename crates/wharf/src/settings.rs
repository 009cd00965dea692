//! Which server a command talks to: settings resolved in layers, most
//! specific first (`--data` > `WHARF_DATA` > what is found on disk).

use std::path::{Path, PathBuf};

/// The data directory a server started for `app_dir` uses by default.
pub fn server_data_dir(cli: Option<&Path>, app_dir: Option<&Path>) -> PathBuf {
    match (cli, app_dir) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(app)) => app.join(".wharf"),
        (None, None) => PathBuf::from(".wharf"),
    }
}

/// The data directory of the server a client command should talk to:
/// 1. `--data` / `WHARF_DATA`;
/// 2. `<app_dir>/.wharf` when the command names an app dir with a server;
/// 3. the nearest `.wharf` with a running server, from the current dir up;
/// 4. the data dir of the last server started by this user;
/// 5. `./.wharf` (the error then says no server runs there).
pub fn client_data_dir(cli: Option<&Path>, app_dir: Option<&Path>) -> PathBuf {
    if let Some(d) = cli {
        return d.to_path_buf();
    }
    let has_server = |d: &Path| d.join(wharf_server::SOCKET_FILE).exists();
    if let Some(app) = app_dir {
        let d = app.join(".wharf");
        if has_server(&d) {
            return d;
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let d = dir.join(".wharf");
            if has_server(&d) {
                return d;
            }
        }
    }
    if let Some(d) = last_server().filter(|d| has_server(d)) {
        return d;
    }
    PathBuf::from(".wharf")
}

/// Where the data dir of the last server started is remembered.
fn last_server_file() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("wharf").join("last-server"))
}

fn last_server() -> Option<PathBuf> {
    let s = std::fs::read_to_string(last_server_file()?).ok()?;
    Some(PathBuf::from(s.trim()))
}

/// Remembers `data_dir` as the last server started (best effort: a
/// read-only home only loses the convenience).
pub fn remember_server(data_dir: &Path) {
    let Some(file) = last_server_file() else {
        return;
    };
    if let Some(parent) = file.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(file, data_dir.to_string_lossy().as_bytes());
}

/// The client of the server a command talks to: `--server` / `WHARF_SERVER`
/// (a URL, or the name of a remote) when given, else the local server of
/// [`client_data_dir`].
///
/// For `https://`, the token is `WHARF_TOKEN`, else the remote's; a
/// server certificate a trusted CA issued is verified as HTTPS clients
/// do, any other is pinned on first contact (its fingerprint is said on
/// stderr and kept in `known_servers`) and must match after. For
/// `ssh://`, `WHARF_SSH_COMMAND` replaces `ssh` (e.g. `ssh -i KEY -o
/// UserKnownHostsFile=F`), and `WHARF_REMOTE_BIN` the `wharf` run there.
pub async fn client(
    server: Option<&str>,
    data: Option<&Path>,
    app_dir: Option<&Path>,
) -> anyhow::Result<wharf_server::client::Client> {
    use wharf_server::client::{Client, Endpoint};

    use crate::Exit;
    use crate::remotes::{self, Url};

    let Some(server) = server.filter(|s| !s.is_empty()) else {
        return Ok(Client::new(&client_data_dir(data, app_dir)));
    };
    let config = remotes::config_dir();
    let (url, remote_token) = if server.contains("://") {
        (server.to_owned(), None)
    } else {
        let known = match &config {
            Some(dir) => remotes::load_remotes(dir).map_err(Exit::Usage)?,
            None => Default::default(),
        };
        let Some(remote) = known.get(server) else {
            let names: Vec<&str> = known.keys().map(String::as_str).collect();
            return Err(Exit::Usage(format!(
                "`{server}` is neither a server URL nor a remote ({}); add it with `wharf remote add {server} URL`",
                if names.is_empty() {
                    "there are none".to_owned()
                } else {
                    format!("remotes: {}", names.join(", "))
                }
            ))
            .into());
        };
        (remote.url.clone(), remote.token.clone())
    };
    let endpoint = match remotes::parse_url(&url).map_err(Exit::Usage)? {
        Url::Https { host, port } => {
            let token = std::env::var("WHARF_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .or(remote_token);
            let pin = pin(config.as_deref(), &host, port).await?;
            Endpoint::Https {
                host,
                port,
                token,
                pin,
            }
        }
        Url::Ssh {
            destination,
            port,
            data_dir,
        } => {
            let ssh = match std::env::var("WHARF_SSH_COMMAND") {
                Ok(cmd) if !cmd.trim().is_empty() => shell_words::split(&cmd).map_err(|e| {
                    Exit::Usage(format!(
                        "WHARF_SSH_COMMAND is not a command line ({e}); fix its quoting"
                    ))
                })?,
                _ => vec!["ssh".to_owned()],
            };
            Endpoint::Ssh {
                destination,
                port,
                data_dir,
                ssh,
                remote_bin: std::env::var("WHARF_REMOTE_BIN")
                    .ok()
                    .filter(|b| !b.is_empty())
                    .unwrap_or_else(|| "wharf".to_owned()),
            }
        }
    };
    Ok(Client::with_endpoint(endpoint))
}

/// The fingerprint pinned for `host:port`, pinning the one the server
/// presents now when there is none yet (trust on first use, as ssh does);
/// `None` when a CA this machine trusts issued it (nothing to pin).
async fn pin(config: Option<&Path>, host: &str, port: u16) -> anyhow::Result<Option<String>> {
    use crate::Exit;
    use crate::remotes;

    let Some(dir) = config else {
        return Err(Exit::Usage(
            "neither XDG_CONFIG_HOME nor HOME is set, so there is nowhere to pin the server's certificate; set one of them".into(),
        )
        .into());
    };
    if let Some(fp) = remotes::known_fingerprint(dir, &format!("{host}:{port}")) {
        return Ok(Some(fp));
    }
    first_contact(dir, host, port).await
}

/// Looks at the certificate `host:port` presents: one a trusted CA issued
/// for `host` needs no pin (`None`); any other is pinned in `dir`'s
/// `known_servers`, and its fingerprint said on stderr.
pub(crate) async fn first_contact(
    dir: &Path,
    host: &str,
    port: u16,
) -> anyhow::Result<Option<String>> {
    let server = format!("{host}:{port}");
    let seen = wharf_server::client::certificate_of(host, port).await?;
    if seen.ca_verified {
        crate::output::note(&format!(
            "{server} presents a certificate a trusted CA issued for {host}: nothing to pin"
        ));
        return Ok(None);
    }
    let fp = seen.fingerprint;
    crate::remotes::set_fingerprint(dir, &server, Some(&fp)).map_err(crate::Exit::Failed)?;
    crate::output::note(&format!(
        "first contact with {server}: pinned its certificate, SHA-256 fingerprint {fp} (compare it with the one `wharf server` printed; kept in {})",
        dir.join("known_servers").display()
    ));
    Ok(Some(fp))
}
