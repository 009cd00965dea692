//! Uploaded sources: `PUT /v1/sources/{sha256}` receives an app directory
//! packed by `wharf-source` and keeps it unpacked under
//! `<data>/sources/<sha256>/`, where a deploy that names the hash reads it.
//! The server never reads a client's path.
//!
//! The body is streamed to a temp file (counted against the limit on the
//! way), then unpacked into `sources/.incoming-…` off the async threads,
//! checked against the hash in the path, and renamed into place: a source
//! directory is either whole or absent. A bad upload leaves nothing but
//! its error. The same hash uploaded twice is unpacked once.

use std::path::{Path, PathBuf};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use crate::api::SourceUploaded;
use crate::http::{AppState, Failure};

/// Where uploaded sources live, under the data dir.
pub const SOURCES_DIR: &str = "sources";

/// What an upload may hold.
pub(crate) fn limits(max_bytes: u64) -> wharf_source::Limits {
    wharf_source::Limits {
        max_bytes,
        ..wharf_source::Limits::default()
    }
}

/// The directory of an uploaded source, if `sha256` is a hash (64 hex).
pub(crate) fn source_dir(data_dir: &Path, sha256: &str) -> Result<PathBuf, Failure> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!("`{sha256}` is not a SHA-256 (64 hex digits) of an upload"),
        ));
    }
    Ok(data_dir.join(SOURCES_DIR).join(sha256.to_ascii_lowercase()))
}

/// `GET /v1/sources/{sha256}`: whether it was uploaded.
pub(crate) async fn get(
    State(s): State<AppState>,
    UrlPath(sha256): UrlPath<String>,
) -> Result<Json<SourceUploaded>, Failure> {
    let dir = source_dir(&s.info.data_dir, &sha256)?;
    if dir.is_dir() {
        Ok(Json(SourceUploaded {
            sha256: sha256.to_ascii_lowercase(),
            files: None,
            bytes: None,
        }))
    } else {
        Err(Failure(
            StatusCode::NOT_FOUND,
            format!("no source {sha256} was uploaded; PUT it first"),
        ))
    }
}

/// `PUT /v1/sources/{sha256}`.
pub(crate) async fn put(
    State(s): State<AppState>,
    UrlPath(sha256): UrlPath<String>,
    body: Body,
) -> Result<Json<SourceUploaded>, Failure> {
    let dir = source_dir(&s.info.data_dir, &sha256)?;
    let sha256 = sha256.to_ascii_lowercase();
    if dir.is_dir() {
        return Ok(Json(SourceUploaded {
            sha256,
            files: None,
            bytes: None,
        }));
    }
    let parent = s.info.data_dir.join(SOURCES_DIR);
    let internal = |what: &str, e: std::io::Error| {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "could not {what} under {}: {e}; check the server's data directory",
                parent.display()
            ),
        )
    };
    tokio::fs::create_dir_all(&parent)
        .await
        .map_err(|e| internal("create", e))?;
    let tag = format!("{:016x}", fastrand::u64(..));
    let tar = parent.join(format!(".incoming-{tag}.tar"));
    let incoming = parent.join(format!(".incoming-{tag}"));
    let limits = limits(s.upload_limit);
    // The archive holds the file bytes plus a header (and padding) per
    // entry: bound what is received before unpacking counts precisely.
    let cap = limits
        .max_bytes
        .saturating_add(limits.max_entries.saturating_mul(2048))
        .saturating_add(1 << 20);
    let received = receive(body, &tar, cap).await;
    let result = match received {
        Err(f) => Err(f),
        Ok(()) => {
            let (tar2, incoming2, expected) = (tar.clone(), incoming.clone(), sha256.clone());
            tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(&tar2)?;
                Ok::<_, std::io::Error>(wharf_source::unpack(
                    std::io::BufReader::new(file),
                    &incoming2,
                    &limits,
                    Some(&expected),
                ))
            })
            .await
            .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
            .and_then(|r| r.map_err(|e| internal("read the upload", e)))
            .and_then(|r| r.map_err(refusal))
        }
    };
    let _ = tokio::fs::remove_file(&tar).await;
    let unpacked = match result {
        Ok(u) => u,
        Err(f) => {
            let _ = tokio::fs::remove_dir_all(&incoming).await;
            tracing::warn!(error = %f.1, "source upload refused");
            return Err(f);
        }
    };
    match tokio::fs::rename(&incoming, &dir).await {
        Ok(()) => {}
        // The same source, uploaded at the same time by another client.
        Err(_) if dir.is_dir() => {
            let _ = tokio::fs::remove_dir_all(&incoming).await;
        }
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&incoming).await;
            return Err(internal("keep the upload", e));
        }
    }
    tracing::info!(sha256 = %sha256, files = unpacked.files, bytes = unpacked.bytes, "source uploaded");
    Ok(Json(SourceUploaded {
        sha256,
        files: Some(unpacked.files),
        bytes: Some(unpacked.bytes),
    }))
}

/// Removes the sources under the data dir that no app deploys from any
/// more (`keep`: each app's last source) and that are over ten minutes
/// old (a client may have uploaded one and not yet sent its deploy).
/// Returns their names and the bytes freed.
pub(crate) async fn prune(data_dir: &Path, keep: &[PathBuf]) -> (Vec<String>, u64) {
    let parent = data_dir.join(SOURCES_DIR);
    let Ok(mut entries) = tokio::fs::read_dir(&parent).await else {
        return (Vec::new(), 0);
    };
    let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    let (mut removed, mut bytes) = (Vec::new(), 0);
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let old = entry
            .metadata()
            .await
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < cutoff);
        if keep.iter().any(|k| k == &path) || !old {
            continue;
        }
        let size = tokio::task::spawn_blocking({
            let path = path.clone();
            move || wharf_runtime::volumes::dir_size(&path)
        })
        .await
        .unwrap_or(0);
        if tokio::fs::remove_dir_all(&path).await.is_ok() {
            bytes += size;
            removed.push(name);
        }
    }
    (removed, bytes)
}

/// Streams `body` into `path`, failing past `cap` bytes.
async fn receive(body: Body, path: &Path, cap: u64) -> Result<(), Failure> {
    let mut file = tokio::fs::File::create(path).await.map_err(|e| {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not write {}: {e}", path.display()),
        )
    })?;
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("the upload was cut short ({e}); send it again"),
            )
        })?;
        total = total.saturating_add(chunk.len() as u64);
        if total > cap {
            return Err(Failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the upload is over {cap} bytes, more than this server takes (`upload_limit_mb` in its server.toml); leave build output and data out of it with a .wharfignore"
                ),
            ));
        }
        file.write_all(&chunk).await.map_err(|e| {
            Failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("could not write {}: {e}", path.display()),
            )
        })?;
    }
    file.flush().await.map_err(|e| {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not write {}: {e}", path.display()),
        )
    })
}

/// An archive `wharf-source` refused, as an answer.
fn refusal(e: wharf_source::SourceError) -> Failure {
    let status = match e {
        wharf_source::SourceError::UploadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        wharf_source::SourceError::Unpack { .. }
        | wharf_source::SourceError::Destination { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    Failure(status, e.to_string())
}
