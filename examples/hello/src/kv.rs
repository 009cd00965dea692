//! `hello kv DIR`: a tiny key-value HTTP store, one file per key in `DIR`.
//!
//! Meant as a wharf accessory in tests and the docker example, where the web
//! mode reaches it through `HELLO_KV_URL`. `GET /up` answers 200,
//! `PUT /kv/{key}` stores the body (204), `GET /kv/{key}` returns it (200) or
//! 404. Keys are 1 to 128 of `A-Z a-z 0-9 _ . -`, except `.` and `..`; any
//! other key (percent-encoded ones included, since `%` is not allowed) is a
//! 400, so a key is always one plain file name inside `DIR`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt;

/// Largest value accepted, by the store and by the web mode's forwarding.
pub const MAX_VALUE: usize = 1024 * 1024;

/// Marks temporary files. Not a key character, so a temporary file can never
/// be read as a key nor collide with one.
const TEMP_MARK: char = '~';

/// The files of a store; the web mode keeps one too with `HELLO_KV_DIR`.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    writes: AtomicU64,
    /// Makes temporary file names unique between concurrent writes.
    temp_counter: AtomicU64,
}

/// Whether `key` may name a value: one plain file name inside the store.
pub fn valid_key(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether reading a body failed because it was longer than the limit given
/// to `axum::body::to_bytes`.
pub fn too_large(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store {
            dir,
            writes: AtomicU64::new(0),
            temp_counter: AtomicU64::new(0),
        }
    }

    /// Creates the directory and clears what a killed writer left.
    pub async fn open(dir: PathBuf) -> Result<Store, String> {
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|err| format!("could not create {}: {err}", dir.display()))?;
        remove_leftovers(&dir).await;
        Ok(Store::new(dir))
    }
}

/// Serves the store on `addr` until SIGTERM or SIGINT.
pub async fn run(addr: SocketAddr, dir: PathBuf) -> Result<(), String> {
    let store = Store::open(dir).await?;
    let dir = store.dir.clone();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|err| format!("could not listen on {addr}: {err}"))?;
    println!(
        "hello kv: listening on http://{addr} (dir {}, pid {})",
        dir.display(),
        std::process::id()
    );
    let store = Arc::new(store);
    let router = Router::new().fallback(handle).with_state(store.clone());
    axum::serve(listener, router)
        .with_graceful_shutdown(crate::shutdown_signal())
        .await
        .map_err(|err| format!("server failed: {err}"))?;
    println!(
        "hello kv: stopped gracefully after {} writes",
        store.writes.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Removes temporary files a killed store left behind; they would
/// otherwise pile up, unreadable, forever.
async fn remove_leftovers(dir: &Path) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        if entry.file_name().to_string_lossy().contains(TEMP_MARK) {
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
    }
}

async fn handle(State(store): State<Arc<Store>>, req: Request) -> Response {
    let path = req.uri().path();
    if path == "/up" {
        return "ok".into_response();
    }
    let Some(key) = path.strip_prefix("/kv/") else {
        return (StatusCode::NOT_FOUND, "not found; use /kv/{key}\n").into_response();
    };
    let key = key.to_owned();
    serve_key(&store, &key, req).await
}

/// `GET` or `PUT /kv/{key}` on `store`.
pub async fn serve_key(store: &Store, key: &str, req: Request) -> Response {
    if !valid_key(key) {
        return (
            StatusCode::BAD_REQUEST,
            "bad key: use 1 to 128 of A-Z a-z 0-9 _ . - (not \".\" or \"..\")\n",
        )
            .into_response();
    }
    match *req.method() {
        Method::GET => get(store, key).await,
        Method::PUT => put(store, key, req.into_body()).await,
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, PUT")],
            "use GET or PUT\n",
        )
            .into_response(),
    }
}

async fn get(store: &Store, key: &str) -> Response {
    match tokio::fs::read(store.dir.join(key)).await {
        Ok(value) => ([(header::CONTENT_TYPE, "application/octet-stream")], value).into_response(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            (StatusCode::NOT_FOUND, "no such key\n").into_response()
        }
        Err(err) => {
            eprintln!("hello kv: could not read {key}: {err}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("could not read {key}: {err}\n"),
            )
                .into_response()
        }
    }
}

async fn put(store: &Store, key: &str, body: Body) -> Response {
    let value = match axum::body::to_bytes(body, MAX_VALUE).await {
        Ok(value) => value,
        Err(err) if too_large(&err) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("values are at most {MAX_VALUE} bytes\n"),
            )
                .into_response();
        }
        Err(_) => {
            return (StatusCode::BAD_REQUEST, "could not read the body\n").into_response();
        }
    };
    let n = store.temp_counter.fetch_add(1, Ordering::Relaxed);
    // The pid keeps names unique across restarts too, should a leftover
    // survive `remove_leftovers`.
    let temp = store
        .dir
        .join(format!(".{key}{TEMP_MARK}{}-{n}.tmp", std::process::id()));
    match write_atomically(&temp, &store.dir.join(key), &value).await {
        Ok(()) => {
            store.writes.fetch_add(1, Ordering::Relaxed);
            println!("hello kv: wrote {key} ({} bytes)", value.len());
            StatusCode::NO_CONTENT.into_response()
        }
        Err(err) => {
            let _ = tokio::fs::remove_file(&temp).await;
            eprintln!("hello kv: could not write {key}: {err}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("could not write {key}: {err}\n"),
            )
                .into_response()
        }
    }
}

/// Writes `value` to `temp`, then renames it over `target`, so a reader (or
/// the store after a crash) sees the old value or the new one, never a
/// torn one.
async fn write_atomically(temp: &Path, target: &Path, value: &Bytes) -> std::io::Result<()> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)
        .await?;
    file.write_all(value).await?;
    // Without it, a power loss right after the rename could leave an empty
    // file under the key.
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(temp, target).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(valid_key("a"));
        assert!(valid_key("counter"));
        assert!(valid_key("A-b_c.d-0"));
        assert!(valid_key(".hidden"));
        assert!(valid_key("..."));
        assert!(valid_key(&"k".repeat(128)));
        assert!(!valid_key(&"k".repeat(129)));
        assert!(!valid_key(""));
        assert!(!valid_key("."));
        assert!(!valid_key(".."));
        assert!(!valid_key("a/b"));
        assert!(!valid_key("../etc"));
        assert!(!valid_key("%2e%2e"));
        assert!(!valid_key("a b"));
        assert!(!valid_key("a~1"));
        assert!(!valid_key("é"));
    }

    #[test]
    fn temp_mark_is_not_a_key_character() {
        assert!(!valid_key(&TEMP_MARK.to_string()));
    }
}
