//! The TLS hosts of a release (`http = { host, tls = … }`): before its
//! instances start, certificate files are checked and installed (a bad
//! file fails the deploy while the old release keeps serving), and ACME
//! certificates are ordered — never waited for: the app goes live on plain
//! HTTP, and the host answers HTTPS (and plain HTTP redirects to it) once
//! the certificate is there. Progress says which.
//!
//! Rollback and restore reuse what is installed: a host that has its
//! certificate keeps it even when the files it came from are gone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wharf_config::{AppConfig, TlsSource};
use wharf_tls::{AcmeStatus, Manager};

use crate::deploy::Run;
use crate::progress::Progress;
use crate::step::Step;
use crate::{DeployError, Engine};

/// The server's certificates, as the engine sees them.
#[derive(Debug, Clone)]
pub struct Certificates {
    pub manager: Arc<Manager>,
    /// Whether the server has an HTTPS listener (else TLS hosts are served
    /// on plain HTTP only, and progress says so).
    pub https: bool,
}

/// The TLS hosts of `config`: (host, where its certificate comes from).
pub(crate) fn tls_hosts(config: &AppConfig) -> Vec<(String, TlsSource)> {
    let mut out: Vec<(String, TlsSource)> = config
        .http_processes()
        .filter_map(|p| p.http.as_ref())
        .flat_map(|http| {
            http.tls
                .iter()
                .flat_map(|tls| http.hosts.iter().map(|h| (h.clone(), tls.clone())))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// A certificate file's path: as written when absolute, else under the
/// app's directory.
fn file_path(source_dir: &Path, written: &str) -> PathBuf {
    let p = Path::new(written);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        source_dir.join(p)
    }
}

impl Engine {
    /// The certificates step of `run` (see the module docs). `fresh`: a
    /// deploy (files are installed again); otherwise a rollback or restore
    /// (a host that has a certificate keeps it).
    pub(crate) async fn certificates_step(
        &self,
        run: &Run,
        config: &AppConfig,
        source_dir: &Path,
        fresh: bool,
    ) -> Result<(), DeployError> {
        let hosts = tls_hosts(config);
        if hosts.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = hosts.iter().map(|(h, _)| h.as_str()).collect();
        run.step(self, Step::Certificates, Some(names.join(", ")))
            .await?;
        let Some(certs) = self.certificates.get() else {
            run.send(Progress::output(
                "this server manages no certificates: the hosts are served on plain HTTP",
            ));
            return Ok(());
        };
        if !certs.https {
            run.send(Progress::output(
                "the server has no HTTPS listener (`wharf server --https-listen ADDR`): the hosts are served on plain HTTP",
            ));
        }
        for (host, source) in hosts {
            let line = match source {
                TlsSource::Files { cert, key } => {
                    if !fresh && certs.manager.resolver().has(&host) {
                        format!("{host}: its certificate is installed")
                    } else {
                        let (cert, key) =
                            (file_path(source_dir, &cert), file_path(source_dir, &key));
                        let info = certs.manager.want_files(&host, &cert, &key).map_err(|e| {
                            DeployError::Certificate {
                                host: host.clone(),
                                why: e.to_string(),
                                serving: run.serving(self),
                            }
                        })?;
                        format!(
                            "{host}: certificate from {} installed{}",
                            cert.display(),
                            expiry(info.not_after)
                        )
                    }
                }
                TlsSource::Acme => match certs.manager.want_acme(&host) {
                    Ok(AcmeStatus::Ready) => format!("{host}: certificate ready"),
                    Ok(AcmeStatus::Ordering) => format!(
                        "{host}: ordering a certificate by ACME; the host answers HTTPS once it is issued (see `wharf certs`), on plain HTTP until then"
                    ),
                    Err(e) => {
                        tracing::warn!(host, error = %e, "could not order a certificate");
                        format!("{host}: could not order a certificate ({e}); served on plain HTTP")
                    }
                },
            };
            run.send(Progress::output(line));
        }
        Ok(())
    }
}

/// ", valid until <date>" from Unix seconds.
fn expiry(not_after: Option<i64>) -> String {
    let Some(secs) = not_after.and_then(|s| u64::try_from(s).ok()) else {
        return String::new();
    };
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    format!(", valid until {}", humantime::format_rfc3339_seconds(at))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tls_hosts_of_a_config() {
        let config = AppConfig::parse(
            Path::new("wharf.toml"),
            r#"
name = "shop"
[processes.web]
command = "web"
http = { host = "shop.example.com", tls = true }
[processes.admin]
command = "admin"
http = { host = "admin.example.com", tls = { cert = "a.pem", key = "a.key" } }
[processes.api]
command = "api"
http = { host = "shop.example.com", path = "/api", tls = true }
[processes.plain]
command = "plain"
http = { host = "plain.example.com", path = "/" }
"#,
        )
        .unwrap();
        assert_eq!(
            tls_hosts(&config),
            [
                (
                    "admin.example.com".to_owned(),
                    TlsSource::Files {
                        cert: "a.pem".into(),
                        key: "a.key".into()
                    }
                ),
                ("shop.example.com".to_owned(), TlsSource::Acme),
            ]
        );
        assert_eq!(
            file_path(Path::new("/app"), "certs/a.pem"),
            Path::new("/app/certs/a.pem")
        );
        assert_eq!(
            file_path(Path::new("/app"), "/etc/a.pem"),
            Path::new("/etc/a.pem")
        );
    }
}
