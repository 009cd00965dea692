//! Proxy errors, pingora-style: where an error came from decides the
//! status code and whether the request may be retried elsewhere.

use http_body_util::LengthLimitError;

use super::pages::Page;
use crate::metrics::UpstreamErrorKind;
use crate::pool::ConnectError;

/// Where an error came from (pingora-style), which decides the status code
/// and whether the request may be retried elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorSource {
    /// The client: bad or too large body.
    Downstream,
    /// The instance: refused, timed out, broke the connection.
    Upstream,
    /// The proxy itself.
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    ConnectRefused,
    ConnectTimeout,
    ConnectFailed,
    ResponseTimeout,
    UpstreamBroken,
    BodyTooLarge,
    BadRequestBody,
    Internal,
}

/// A failed exchange: what, where from, whether a retry is allowed.
#[derive(Debug, thiserror::Error)]
#[error("{source_side:?} error {kind:?}")]
pub(crate) struct ProxyError {
    pub(crate) kind: ErrorKind,
    pub(crate) source_side: ErrorSource,
    /// True when nothing of the request was sent, so it may go elsewhere.
    pub(crate) retry: bool,
    #[source]
    pub(crate) cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ProxyError {
    pub(crate) fn from_connect(e: ConnectError, bodyless: bool) -> ProxyError {
        let kind = match e {
            ConnectError::Refused => ErrorKind::ConnectRefused,
            ConnectError::Timeout(_) => ErrorKind::ConnectTimeout,
            ConnectError::Io(_) | ConnectError::Handshake(_) => ErrorKind::ConnectFailed,
        };
        ProxyError {
            kind,
            source_side: ErrorSource::Upstream,
            retry: bodyless,
            cause: Some(Box::new(e)),
        }
    }

    pub(crate) fn from_send(e: hyper::Error) -> ProxyError {
        let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut too_large = false;
        while let Some(s) = src {
            if s.is::<LengthLimitError>() {
                too_large = true;
                break;
            }
            src = s.source();
        }
        let (kind, side) = if too_large {
            (ErrorKind::BodyTooLarge, ErrorSource::Downstream)
        } else if e.is_user() {
            // Polling the request body failed: the client's body is broken.
            (ErrorKind::BadRequestBody, ErrorSource::Downstream)
        } else {
            (ErrorKind::UpstreamBroken, ErrorSource::Upstream)
        };
        ProxyError {
            kind,
            source_side: side,
            retry: false,
            cause: Some(Box::new(e)),
        }
    }

    pub(crate) fn metric(&self) -> Option<UpstreamErrorKind> {
        match self.kind {
            ErrorKind::ConnectRefused | ErrorKind::ConnectFailed => {
                Some(UpstreamErrorKind::Connect)
            }
            ErrorKind::ConnectTimeout => Some(UpstreamErrorKind::ConnectTimeout),
            ErrorKind::ResponseTimeout => Some(UpstreamErrorKind::Timeout),
            ErrorKind::UpstreamBroken => Some(UpstreamErrorKind::Io),
            _ => None,
        }
    }

    pub(crate) fn page(&self) -> Page {
        match self.kind {
            ErrorKind::ConnectRefused | ErrorKind::ConnectTimeout | ErrorKind::ConnectFailed => {
                Page::Unreachable
            }
            ErrorKind::ResponseTimeout => Page::Timeout,
            ErrorKind::UpstreamBroken => Page::BadGateway,
            ErrorKind::BodyTooLarge => Page::TooLarge,
            ErrorKind::BadRequestBody => Page::BadRequest,
            ErrorKind::Internal => Page::Internal,
        }
    }
}
