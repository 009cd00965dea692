//! A client of the local API, over the server's unix socket.

use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::*;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no wharf server is running on {data_dir} (could not connect to {socket}: {source}); start one with `wharf up` or `wharf server`, or point --data / WHARF_DATA at its data directory"
    )]
    NotRunning {
        data_dir: PathBuf,
        socket: PathBuf,
        source: std::io::Error,
    },
    /// The server answered with an error.
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("the connection to the wharf server failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("the wharf server sent something this client cannot read: {0}")]
    Decode(String),
}

/// Talks to the server whose data directory is `data_dir`.
#[derive(Debug, Clone)]
pub struct Client {
    data_dir: PathBuf,
}

impl Client {
    pub fn new(data_dir: &Path) -> Client {
        Client {
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, ClientError> {
        let socket = self.data_dir.join(crate::SOCKET_FILE);
        let stream = tokio::net::UnixStream::connect(&socket)
            .await
            .map_err(|source| ClientError::NotRunning {
                data_dir: self.data_dir.clone(),
                socket: socket.clone(),
                source,
            })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "wharf")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let resp = sender.send_request(req).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let message = serde_json::from_slice::<ApiError>(&bytes)
            .map(|e| e.error)
            .unwrap_or_else(|_| format!("{status}: {}", String::from_utf8_lossy(&bytes)));
        Err(ClientError::Api {
            status: status.as_u16(),
            message,
        })
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self.send(Method::GET, path, None).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn post_stream<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Lines<T>, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let resp = self.send(Method::POST, path, Some(body)).await?;
        Ok(Lines::new(resp))
    }

    pub async fn status(&self) -> Result<StatusResponse, ClientError> {
        self.get_json("/v1/status").await
    }

    pub async fn releases(&self, app: &str) -> Result<Vec<ReleaseInfo>, ClientError> {
        self.get_json(&format!("/v1/apps/{}/releases", encode(app)))
            .await
    }

    pub async fn events(&self, app: &str, limit: u32) -> Result<Vec<EventInfo>, ClientError> {
        self.get_json(&format!("/v1/apps/{}/events?limit={limit}", encode(app)))
            .await
    }

    pub async fn deploy(&self, body: &DeployBody) -> Result<Lines<Progress>, ClientError> {
        self.post_stream("/v1/deploys", body).await
    }

    pub async fn rollback(
        &self,
        app: &str,
        body: &RollbackBody,
    ) -> Result<Lines<Progress>, ClientError> {
        self.post_stream(&format!("/v1/apps/{}/rollback", encode(app)), body)
            .await
    }

    /// `wharf promote` / `wharf abort`.
    pub async fn control(&self, app: &str, control: Control) -> Result<(), ClientError> {
        let verb = match control {
            Control::Promote => "promote",
            Control::Abort => "abort",
        };
        self.send(
            Method::POST,
            &format!("/v1/apps/{}/{verb}", encode(app)),
            None,
        )
        .await?;
        Ok(())
    }

    pub async fn logs(
        &self,
        app: &str,
        process: Option<&str>,
        tail: usize,
        follow: bool,
    ) -> Result<Lines<LogLineOut>, ClientError> {
        let mut path = format!("/v1/apps/{}/logs?tail={tail}&follow={follow}", encode(app));
        if let Some(p) = process {
            path.push_str(&format!("&process={}", encode(p)));
        }
        let resp = self.send(Method::GET, &path, None).await?;
        Ok(Lines::new(resp))
    }
}

impl Client {
    async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let resp = self.send(Method::POST, path, Some(body)).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// The state of every accessory of `app` (config read from `source_dir`
    /// when given).
    pub async fn accessories(
        &self,
        app: &str,
        source_dir: Option<&Path>,
    ) -> Result<Vec<AccessoryStatus>, ClientError> {
        let mut path = format!("/v1/apps/{}/accessories", encode(app));
        if let Some(dir) = source_dir {
            path.push_str(&format!("?source_dir={}", encode(&dir.to_string_lossy())));
        }
        self.get_json(&path).await
    }

    /// `wharf accessory boot|stop|remove`.
    pub async fn accessory(
        &self,
        app: &str,
        name: &str,
        action: &str,
        body: &AccessoryBody,
    ) -> Result<AccessoryStatus, ClientError> {
        self.post_json(
            &format!(
                "/v1/apps/{}/accessories/{}/{}",
                encode(app),
                encode(name),
                encode(action)
            ),
            body,
        )
        .await
    }

    pub async fn accessory_logs(
        &self,
        app: &str,
        name: &str,
        source_dir: Option<&Path>,
        tail: usize,
        follow: bool,
    ) -> Result<Lines<LogLineOut>, ClientError> {
        let mut path = format!(
            "/v1/apps/{}/accessories/{}/logs?tail={tail}&follow={follow}",
            encode(app),
            encode(name)
        );
        if let Some(dir) = source_dir {
            path.push_str(&format!("&source_dir={}", encode(&dir.to_string_lossy())));
        }
        let resp = self.send(Method::GET, &path, None).await?;
        Ok(Lines::new(resp))
    }

    /// `wharf run -- CMD`.
    pub async fn run(
        &self,
        app: &str,
        body: &RunBody,
    ) -> Result<Lines<CommandOutput>, ClientError> {
        self.post_stream(&format!("/v1/apps/{}/run", encode(app)), body)
            .await
    }

    /// `wharf exec PROCESS -- CMD`.
    pub async fn exec(
        &self,
        app: &str,
        body: &ExecBody,
    ) -> Result<Lines<CommandOutput>, ClientError> {
        self.post_stream(&format!("/v1/apps/{}/exec", encode(app)), body)
            .await
    }

    /// `wharf certs`.
    pub async fn certs(&self) -> Result<Vec<CertView>, ClientError> {
        self.get_json("/v1/certs").await
    }

    pub async fn prune(&self) -> Result<PruneReport, ClientError> {
        self.post_json("/v1/prune", &()).await
    }

    /// `wharf maintenance on|off`.
    pub async fn maintenance(&self, app: &str, body: &MaintenanceBody) -> Result<(), ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let path = format!("/v1/apps/{}/maintenance", encode(app));
        self.send(Method::POST, &path, Some(body)).await?;
        Ok(())
    }

    /// `wharf volumes`: the named volumes of `app`.
    pub async fn volumes(&self, app: &str) -> Result<Vec<VolumeView>, ClientError> {
        self.get_json(&format!("/v1/apps/{}/volumes", encode(app)))
            .await
    }

    /// `wharf volumes remove`: deletes a volume and its data.
    pub async fn remove_volume(&self, app: &str, name: &str) -> Result<(), ClientError> {
        let path = format!("/v1/apps/{}/volumes/{}", encode(app), encode(name));
        self.send(Method::DELETE, &path, None).await?;
        Ok(())
    }

    /// `wharf apps remove`: the app and everything of it (its named
    /// volumes too with `volumes`).
    pub async fn remove_app(&self, app: &str, volumes: bool) -> Result<RemovedApp, ClientError> {
        let path = format!("/v1/apps/{}?volumes={volumes}", encode(app));
        let resp = self.send(Method::DELETE, &path, None).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

/// App and process names are `[a-z0-9-]`, but a user may type anything:
/// percent-encode everything else.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A stream of newline-delimited JSON values from a response body.
#[derive(Debug)]
pub struct Lines<T> {
    body: Incoming,
    buf: BytesMut,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Lines<T> {
    fn new(resp: Response<Incoming>) -> Lines<T> {
        debug_assert_eq!(resp.status(), StatusCode::OK);
        Lines {
            body: resp.into_body(),
            buf: BytesMut::new(),
            _t: std::marker::PhantomData,
        }
    }

    /// The next value; `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Result<T, ClientError>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(pos + 1);
                let line = &line[..pos];
                if line.is_empty() {
                    continue;
                }
                return Some(
                    serde_json::from_slice(line).map_err(|e| ClientError::Decode(e.to_string())),
                );
            }
            match self.body.frame().await {
                None => return None,
                Some(Err(e)) => return Some(Err(e.into())),
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
            }
        }
    }
}
