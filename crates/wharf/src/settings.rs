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
