//! One ACME order over HTTP-01 with instant-acme, and the HTTPS client it
//! uses when the ACME server's certificate chains to CA files wharf was
//! given (a test CA such as Pebble's) instead of the system's roots.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use hyper_util::rt::TokioIo;
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType, HttpClient,
    Identifier, NewOrder, Order, OrderStatus, RetryPolicy,
};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::{Challenges, TlsError};

/// How long one HTTP request to the ACME server may take until its
/// response headers arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the order's state is polled while the server validates and issues.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(120));

/// The ACME problem type of an account the server does not know (any more).
const ACCOUNT_DOES_NOT_EXIST: &str = "urn:ietf:params:acme:error:accountDoesNotExist";

/// Why an order failed, by who can fix it.
#[derive(Debug)]
pub(crate) enum OrderError {
    /// The server does not know the account (it was reset, or it is another
    /// server): forget it and create a new one.
    AccountGone(String),
    /// The server could not validate the host.
    Validation(String),
    /// Anything else: network, server errors, timeouts.
    Other(String),
}

/// Checks a directory URL well enough that instant-acme cannot panic on it.
pub(crate) fn check_directory_url(url: &str) -> Result<(), TlsError> {
    let refuse = |reason: &str| {
        Err(TlsError::InvalidDirectoryUrl {
            url: url.escape_debug().to_string(),
            reason: reason.to_owned(),
        })
    };
    let uri = match url.parse::<Uri>() {
        Ok(uri) => uri,
        Err(err) => return refuse(&format!("it does not parse ({err})")),
    };
    if uri.scheme_str() != Some("https") {
        return refuse("it is not an https:// URL");
    }
    if uri.host().is_none_or(str::is_empty) {
        return refuse("it has no host");
    }
    Ok(())
}

/// A TLS client configuration trusting exactly the certificates in `paths`.
pub(crate) fn client_config(paths: &[PathBuf]) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for path in paths {
        let bad = |detail: String| TlsError::BadRoot {
            path: path.clone(),
            detail,
        };
        let bytes = std::fs::read(path).map_err(|err| bad(err.to_string()))?;
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(&bytes) {
            let cert = cert.map_err(|err| bad(format!("the PEM does not parse ({err})")))?;
            roots
                .add(cert)
                .map_err(|err| bad(format!("a certificate is not usable ({err})")))?;
            found += 1;
        }
        if found == 0 {
            return Err(bad("no CERTIFICATE block found".to_owned()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::BadRoot {
            path: paths.first().cloned().unwrap_or_default(),
            detail: err.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// instant-acme's HTTP client for a server whose certificate chains to the
/// given roots: one HTTP/1.1 connection per request (ACME traffic is a
/// handful of requests per order), each bounded by [`REQUEST_TIMEOUT`].
pub(crate) struct RootsClient {
    tls: TlsConnector,
}

impl RootsClient {
    pub(crate) fn new(config: Arc<ClientConfig>) -> Self {
        Self {
            tls: TlsConnector::from(config),
        }
    }
}

impl HttpClient for RootsClient {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let tls = self.tls.clone();
        Box::pin(async move {
            let uri = req.uri().to_string();
            match tokio::time::timeout(REQUEST_TIMEOUT, send(tls, req)).await {
                Ok(result) => result,
                Err(_) => Err(other(format!(
                    "no answer from {uri} within {}s",
                    REQUEST_TIMEOUT.as_secs()
                ))),
            }
        })
    }
}

fn other(message: String) -> instant_acme::Error {
    instant_acme::Error::Other(message.into())
}

async fn send(
    tls: TlsConnector,
    mut req: Request<BodyWrapper<Bytes>>,
) -> Result<BytesResponse, instant_acme::Error> {
    let uri = req.uri().clone();
    if uri.scheme_str() != Some("https") {
        return Err(other(format!(
            "refusing to talk ACME over plain HTTP: {uri}"
        )));
    }
    let (Some(host), Some(authority)) = (uri.host(), uri.authority()) else {
        return Err(other(format!("the URL {uri} has no host")));
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let server_name = ServerName::try_from(host.clone())
        .map_err(|err| other(format!("{host} is not a server name ({err})")))?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|err| other(format!("could not connect to {authority}: {err}")))?;
    let stream = tls
        .connect(server_name, tcp)
        .await
        .map_err(|err| other(format!("TLS with {authority} failed: {err}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(instant_acme::Error::Hyper)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let host_header = http::HeaderValue::from_str(authority.as_str())
        .map_err(|err| other(format!("bad host {authority}: {err}")))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *req.uri_mut() = path
        .parse::<Uri>()
        .map_err(instant_acme::Error::InvalidUri)?;
    req.headers_mut().insert(header::HOST, host_header);
    let response = sender
        .send_request(req)
        .await
        .map_err(instant_acme::Error::Hyper)?;
    Ok(BytesResponse::from(response))
}

/// Describes an instant-acme error for a person: the server's own words
/// when it sent a problem document.
pub(crate) fn describe(err: &instant_acme::Error) -> String {
    match err {
        instant_acme::Error::Api(problem) => describe_problem(problem),
        other => other.to_string(),
    }
}

fn describe_problem(problem: &instant_acme::Problem) -> String {
    let mut text = match (&problem.detail, &problem.r#type) {
        (Some(detail), _) => detail.clone(),
        (None, Some(kind)) => kind.clone(),
        (None, None) => "the server gave no detail".to_owned(),
    };
    for sub in &problem.subproblems {
        if let Some(detail) = &sub.detail {
            text.push_str("; ");
            text.push_str(detail);
        }
    }
    text
}

fn classify(err: &instant_acme::Error) -> OrderError {
    if let instant_acme::Error::Api(problem) = err
        && problem.r#type.as_deref() == Some(ACCOUNT_DOES_NOT_EXIST)
    {
        return OrderError::AccountGone(describe(err));
    }
    OrderError::Other(describe(err))
}

/// Removes the order's tokens from [`Challenges`] however the order ends
/// (success, error, or the task being cancelled).
struct Tokens<'a> {
    challenges: &'a Challenges,
    tokens: Vec<String>,
}

impl Drop for Tokens<'_> {
    fn drop(&mut self) {
        for token in &self.tokens {
            self.challenges.remove(token);
        }
    }
}

/// Orders a certificate for `host` over HTTP-01 and returns the PEM chain
/// and the PEM private key (made fresh for this order).
pub(crate) async fn order(
    account: &Account,
    host: &str,
    challenges: &Challenges,
) -> Result<(String, String), OrderError> {
    let identifiers = [Identifier::Dns(host.to_owned())];
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|err| classify(&err))?;

    let mut tokens = Tokens {
        challenges,
        tokens: Vec::new(),
    };
    {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|err| classify(&err))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                status => {
                    return Err(OrderError::Validation(format!(
                        "the authorization is {}",
                        format!("{status:?}").to_lowercase()
                    )));
                }
            }
            let Some(mut challenge) = authz.challenge(ChallengeType::Http01) else {
                return Err(OrderError::Validation(
                    "the ACME server offered no HTTP-01 challenge".to_owned(),
                ));
            };
            let token = challenge.token.clone();
            challenges.insert(token.clone(), challenge.key_authorization().as_str());
            tokens.tokens.push(token);
            challenge.set_ready().await.map_err(|err| classify(&err))?;
        }
    }

    match order.poll_ready(&POLL).await {
        Ok(OrderStatus::Ready) => {}
        Ok(OrderStatus::Invalid) | Err(instant_acme::Error::Api(_)) => {
            return Err(OrderError::Validation(validation_detail(&mut order).await));
        }
        Ok(status) => {
            return Err(OrderError::Other(format!(
                "the order stayed {} instead of becoming ready",
                format!("{status:?}").to_lowercase()
            )));
        }
        Err(err) => return Err(classify(&err)),
    }
    // The server has validated; the tokens are no longer needed.
    drop(tokens);

    let key_pem = order.finalize().await.map_err(|err| classify(&err))?;
    let chain_pem = order
        .poll_certificate(&POLL)
        .await
        .map_err(|err| classify(&err))?;
    Ok((chain_pem, key_pem))
}

/// Why the server refused the order's authorizations, in its words.
async fn validation_detail(order: &mut Order) -> String {
    let mut details = Vec::new();
    if let Some(problem) = &order.state().error {
        details.push(describe_problem(problem));
    }
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        if authz.refresh().await.is_err() {
            continue;
        }
        for challenge in &authz.challenges {
            if let Some(problem) = &challenge.error {
                let text = describe_problem(problem);
                if !details.contains(&text) {
                    details.push(text);
                }
            }
        }
    }
    if details.is_empty() {
        "the order became invalid and the server gave no reason".to_owned()
    } else {
        details.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_urls_that_would_trip_the_client_are_refused() {
        for url in [
            "",
            "not a url",
            "http://acme.example/dir",
            "https://",
            "https:///dir",
            "ftp://acme.example/dir",
            "https://exa mple.com/dir",
        ] {
            assert!(check_directory_url(url).is_err(), "{url:?}");
        }
        for url in [
            "https://acme-v02.api.letsencrypt.org/directory",
            "https://127.0.0.1:14000/dir",
            "https://[::1]:14000/dir",
        ] {
            assert!(check_directory_url(url).is_ok(), "{url:?}");
        }
    }

    #[test]
    fn ca_files_without_certificates_are_refused() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let empty = tmp.path().join("empty.pem");
        std::fs::write(&empty, "nothing here").expect("write");
        let missing = tmp.path().join("missing.pem");
        for path in [empty, missing] {
            let err = client_config(std::slice::from_ref(&path));
            assert!(matches!(err, Err(TlsError::BadRoot { .. })), "{err:?}");
        }
        let pair = crate::testutil::self_signed(&["ca.test"]);
        let ok = tmp.path().join("ca.pem");
        std::fs::write(&ok, pair.cert).expect("write");
        assert!(client_config(&[ok]).is_ok());
    }
}
