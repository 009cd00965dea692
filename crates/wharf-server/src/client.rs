//! A client of the API: over the server's unix socket on this machine, or
//! from another machine over `https://` (a token, the certificate pinned)
//! or `ssh://` (`ssh HOST wharf dial-stdio`, as Docker's `ssh://` hosts).
//! Every command speaks the same HTTP/1.1 API through any of them.

use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use wharf_tls::pin::{Seen, Trust};

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
    #[error(
        "could not reach the wharf server at {server}: {source}; check the address, and that the server runs with `--api`"
    )]
    Unreachable {
        server: String,
        source: std::io::Error,
    },
    #[error(
        "the TLS connection to {server} failed: {message}; if the server's certificate was replaced on purpose, run `wharf remote forget {server}` and connect again to pin the new one"
    )]
    Tls { server: String, message: String },
    #[error("could not run `{command}` to reach {server}: {source}; is an ssh client installed?")]
    Ssh {
        server: String,
        command: String,
        source: std::io::Error,
    },
    #[error(
        "the wharf server at {server} did not answer through ssh (the remote side's error, if any, is above); check the data directory in the URL, and that `wharf` runs there (WHARF_REMOTE_BIN names it)"
    )]
    NoAnswer { server: String },
    /// The server answered with an error.
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("the connection to the wharf server failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("the wharf server sent something this client cannot read: {0}")]
    Decode(String),
}

/// Where the server is, and how to reach it.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// The unix socket in a data directory on this machine.
    Local { data_dir: PathBuf },
    /// `https://host:port` (`wharf server --api`): a bearer token, and the
    /// SHA-256 fingerprint of the server's certificate pinned on first use.
    Https {
        host: String,
        port: u16,
        token: Option<String>,
        /// The pinned fingerprint; with none, only a certificate a CA
        /// this machine trusts issued (a CA-issued one is always accepted)
        /// (only for [`fingerprint_of`]'s first contact).
        pin: Option<String>,
    },
    /// `ssh://[user@]host[:port][/data-dir]`: the system's `ssh` runs
    /// `wharf dial-stdio` on the host, and the API is spoken through it.
    Ssh {
        /// `[user@]host`.
        destination: String,
        port: Option<u16>,
        /// The server's data directory on the host (default: its own).
        data_dir: Option<String>,
        /// The ssh program and its options (`WHARF_SSH_COMMAND`, else `ssh`).
        ssh: Vec<String>,
        /// The `wharf` program on the host (`WHARF_REMOTE_BIN`, else `wharf`).
        remote_bin: String,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Local { data_dir } => write!(f, "{}", data_dir.display()),
            Endpoint::Https { host, port, .. } => write!(f, "https://{host}:{port}"),
            Endpoint::Ssh {
                destination,
                port,
                data_dir,
                ..
            } => {
                write!(f, "ssh://{destination}")?;
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                if let Some(d) = data_dir {
                    write!(f, "{d}")?;
                }
                Ok(())
            }
        }
    }
}

/// A byte stream to the server, whatever carries it.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Talks to one server.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
}

impl Client {
    /// The server whose data directory is `data_dir`, on this machine.
    pub fn new(data_dir: &Path) -> Client {
        Client {
            endpoint: Endpoint::Local {
                data_dir: data_dir.to_path_buf(),
            },
        }
    }

    pub fn with_endpoint(endpoint: Endpoint) -> Client {
        Client { endpoint }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Whether the server is on this machine, reached through its socket
    /// (it may then be given paths on this machine).
    pub fn is_local(&self) -> bool {
        matches!(self.endpoint, Endpoint::Local { .. })
    }

    /// A connection to the server, and what must live as long as it (the
    /// ssh child).
    async fn connect(&self) -> Result<(Box<dyn Io>, Option<tokio::process::Child>), ClientError> {
        match &self.endpoint {
            Endpoint::Local { data_dir } => {
                let socket = data_dir.join(crate::SOCKET_FILE);
                let stream = tokio::net::UnixStream::connect(&socket)
                    .await
                    .map_err(|source| ClientError::NotRunning {
                        data_dir: data_dir.clone(),
                        socket: socket.clone(),
                        source,
                    })?;
                Ok((Box::new(stream), None))
            }
            Endpoint::Https {
                host, port, pin, ..
            } => {
                let trust = match pin {
                    Some(fp) => Trust::Pinned(fp.clone()),
                    None => Trust::CaOnly,
                };
                let (tls, _) = tls_connect(host, *port, trust).await?;
                Ok((Box::new(tls), None))
            }
            Endpoint::Ssh {
                destination,
                port,
                data_dir,
                ssh,
                remote_bin,
            } => {
                let (program, options) = match ssh.split_first() {
                    Some((p, o)) => (p.as_str(), o),
                    None => ("ssh", &[][..]),
                };
                let mut command = tokio::process::Command::new(program);
                command.args(options);
                if let Some(p) = port {
                    command.arg("-p").arg(p.to_string());
                }
                // The remote command is split by the remote shell: quote
                // what could be split.
                command
                    .arg("--")
                    .arg(destination)
                    .arg(shell_quote(remote_bin))
                    .arg("dial-stdio");
                if let Some(d) = data_dir {
                    command.arg("--data").arg(shell_quote(d));
                }
                command
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::inherit())
                    .kill_on_drop(true);
                let mut child = command.spawn().map_err(|source| ClientError::Ssh {
                    server: self.endpoint.to_string(),
                    command: program.to_owned(),
                    source,
                })?;
                let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                    return Err(ClientError::Decode("ssh started without pipes".into()));
                };
                Ok((Box::new(tokio::io::join(stdout, stdin)), Some(child)))
            }
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, ClientError> {
        self.send_body(
            method,
            path,
            "application/json",
            Bytes::from(body.unwrap_or_default()),
        )
        .await
    }

    async fn send_body(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Response<Incoming>, ClientError> {
        let (stream, child) = self.connect().await?;
        let over_ssh = child.is_some();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
            // The ssh child lives as long as the connection.
            drop(child);
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "wharf")
            .header(hyper::header::CONTENT_TYPE, content_type);
        if let Endpoint::Https {
            token: Some(token), ..
        } = &self.endpoint
        {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let resp = match sender.send_request(req).await {
            Ok(resp) => resp,
            Err(e) if over_ssh && e.is_incomplete_message() => {
                return Err(ClientError::NoAnswer {
                    server: self.endpoint.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        };
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

    /// Whether the server already holds the uploaded source `sha256`.
    pub async fn has_source(&self, sha256: &str) -> Result<bool, ClientError> {
        match self
            .send(
                Method::GET,
                &format!("/v1/sources/{}", encode(sha256)),
                None,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uploads a packed app directory (`wharf-source`'s tar) under its hash.
    pub async fn upload_source(
        &self,
        sha256: &str,
        tar: Vec<u8>,
    ) -> Result<SourceUploaded, ClientError> {
        let resp = self
            .send_body(
                Method::PUT,
                &format!("/v1/sources/{}", encode(sha256)),
                "application/x-tar",
                Bytes::from(tar),
            )
            .await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `wharf jobs [APP]`: newest first.
    pub async fn jobs(&self, app: Option<&str>, limit: u32) -> Result<Vec<JobInfo>, ClientError> {
        let mut path = format!("/v1/jobs?limit={limit}");
        if let Some(app) = app {
            path.push_str(&format!("&app={}", encode(app)));
        }
        self.get_json(&path).await
    }

    /// `wharf job show ID`.
    pub async fn job(&self, id: i64) -> Result<JobView, ClientError> {
        self.get_json(&format!("/v1/jobs/{id}")).await
    }

    /// `wharf job logs ID [-f]`.
    pub async fn job_logs(&self, id: i64, follow: bool) -> Result<Lines<JobLogLine>, ClientError> {
        let resp = self
            .send(
                Method::GET,
                &format!("/v1/jobs/{id}/logs?follow={follow}"),
                None,
            )
            .await?;
        Ok(Lines::new(resp))
    }

    /// `wharf job cancel ID`.
    pub async fn cancel_job(&self, id: i64) -> Result<JobCancelled, ClientError> {
        self.post_json(&format!("/v1/jobs/{id}/cancel"), &()).await
    }

    /// `wharf cron list`.
    pub async fn cron(&self, app: &str) -> Result<Vec<CronView>, ClientError> {
        self.get_json(&format!("/v1/apps/{}/cron", encode(app)))
            .await
    }

    /// `wharf cron runs NAME`.
    pub async fn cron_runs(
        &self,
        app: &str,
        name: &str,
        limit: usize,
    ) -> Result<Vec<JobInfo>, ClientError> {
        self.get_json(&format!(
            "/v1/apps/{}/cron/{}/runs?limit={limit}",
            encode(app),
            encode(name)
        ))
        .await
    }

    /// `wharf cron run NAME`.
    pub async fn cron_run(&self, app: &str, name: &str) -> Result<CronQueued, ClientError> {
        self.post_json(
            &format!("/v1/apps/{}/cron/{}/run", encode(app), encode(name)),
            &(),
        )
        .await
    }

    /// `wharf token list`.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, ClientError> {
        self.get_json("/v1/tokens").await
    }

    /// `wharf token create`: the secret is in the answer, and nowhere else.
    pub async fn create_token(&self, body: &TokenBody) -> Result<TokenCreated, ClientError> {
        self.post_json("/v1/tokens", body).await
    }

    /// `wharf token revoke`.
    pub async fn revoke_token(&self, id: &str) -> Result<(), ClientError> {
        self.send(Method::DELETE, &format!("/v1/tokens/{}", encode(id)), None)
            .await?;
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

/// A TLS connection to `host:port` trusting a CA-issued certificate, else
/// as `trust` says, and the certificate the server presented.
async fn tls_connect(
    host: &str,
    port: u16,
    trust: Trust,
) -> Result<(tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Seen), ClientError> {
    let server = format!("{host}:{port}");
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|source| ClientError::Unreachable {
            server: server.clone(),
            source,
        })?;
    let verifier = wharf_tls::pin::PinnedVerifier::new(trust);
    let connector = tokio_rustls::TlsConnector::from(verifier.client_config());
    let name =
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| ClientError::Tls {
            server: server.clone(),
            message: format!("`{host}` is not a host name or address ({e})"),
        })?;
    match connector.connect(name, tcp).await {
        Ok(tls) => match verifier.seen() {
            Some(seen) => Ok((tls, seen)),
            None => Err(ClientError::Tls {
                server,
                message: "the server presented no certificate".into(),
            }),
        },
        Err(e) => Err(ClientError::Tls {
            server,
            message: e.to_string(),
        }),
    }
}

/// The certificate the server at `host:port` presents (its SHA-256
/// fingerprint, and whether a CA this machine trusts issued it), for the
/// client to pin on first use when no CA did.
pub async fn certificate_of(host: &str, port: u16) -> Result<Seen, ClientError> {
    tls_connect(host, port, Trust::FirstUse)
        .await
        .map(|(_, seen)| seen)
}

/// Quotes `s` for a POSIX shell when it holds anything but safe characters.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:=@%+,".contains(&b))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Push to deploy: an app's webhook secret, forge token and deliveries
/// (`crate::hooks`).
impl Client {
    /// `wharf hooks secret APP`: a new secret, in this answer and nowhere
    /// else.
    pub async fn create_hook_secret(
        &self,
        app: &str,
    ) -> Result<crate::hooks::HookSecretCreated, ClientError> {
        self.post_json(&format!("/v1/apps/{}/hooks/secret", encode(app)), &())
            .await
    }

    /// `wharf hooks secret APP --forge-token`: stores the forge API token.
    pub async fn set_forge_token(
        &self,
        app: &str,
        token: &str,
    ) -> Result<crate::hooks::HooksView, ClientError> {
        let body = crate::hooks::ForgeTokenBody {
            token: token.to_owned(),
        };
        let body = serde_json::to_vec(&body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let path = format!("/v1/apps/{}/hooks/forge-token", encode(app));
        let resp = self.send(Method::PUT, &path, Some(body)).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// What is set for `app`'s webhooks (never a value).
    pub async fn hooks(&self, app: &str) -> Result<crate::hooks::HooksView, ClientError> {
        self.get_json(&format!("/v1/apps/{}/hooks", encode(app)))
            .await
    }

    /// `wharf hooks deliveries APP`: newest first.
    pub async fn hook_deliveries(
        &self,
        app: &str,
        limit: u32,
    ) -> Result<crate::hooks::DeliveriesView, ClientError> {
        self.get_json(&format!(
            "/v1/apps/{}/hooks/deliveries?limit={limit}",
            encode(app)
        ))
        .await
    }
}
