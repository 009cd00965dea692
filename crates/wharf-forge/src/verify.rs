//! Webhook signatures, checked over the raw body in constant time.
//!
//! Every forge but GitLab signs the body with HMAC-SHA256 under the
//! webhook's secret and sends the digest in hex (control-plane notes §1.1):
//!
//! | forge | header checked, in order | format |
//! |---|---|---|
//! | GitHub | `X-Hub-Signature-256` | `sha256=<hex>` (§1.2) |
//! | Gitea | `X-Gitea-Signature`, else `X-Hub-Signature-256` | bare hex; `sha256=<hex>` (§1.4) |
//! | Forgejo | `X-Forgejo-Signature`, else `X-Gitea-Signature`, else `X-Hub-Signature-256` | bare hex; bare hex; `sha256=<hex>` (§1.5) |
//! | Bitbucket Cloud | `X-Hub-Signature` | `sha256=<hex>` (§1.6) |
//!
//! Only the *first* of a forge's headers that is present is checked: a bad
//! `X-Forgejo-Signature` is never rescued by a good `X-Gitea-Signature`
//! (§1.5). SHA-1 signatures (`X-Hub-Signature: sha1=…` from GitHub and
//! Gitea) are never accepted.
//!
//! GitLab (§1.3, §5) either sends the secret itself in `X-Gitlab-Token`,
//! compared in constant time, or, with a 19.x *signing token*, signs in the
//! Standard Webhooks way: `webhook-signature: v1,<base64>` (a
//! space-separated list; any `v1` entry may match) over
//! `{webhook-id}.{webhook-timestamp}.{body}`, keyed by the base64 after
//! `whsec_` in the token, with `webhook-timestamp` (unix seconds) within a
//! tolerance of `now`. The path is chosen by the presence of
//! `webhook-signature`, since GitLab sends `webhook-id` and
//! `webhook-timestamp` on every delivery; when it is present the
//! `X-Gitlab-Token` is not looked at, so it cannot rescue a bad signature.
//!
//! Every check fails closed: no secret, an empty secret, a missing,
//! repeated or malformed header and a wrong signature are each refused with
//! their own [`VerifyError`].

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::forge::{Forge, single_header};

type HmacSha256 = Hmac<Sha256>;

/// How far a signed `webhook-timestamp` may be from `now`: five minutes,
/// the usual default of Standard Webhooks libraries (notes §5).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The clock reading and the timestamp tolerance for [`verify()`]; only
/// GitLab's signing tokens sign a timestamp, the other forges ignore these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The server's time, in unix seconds, read by the caller.
    pub now_unix: i64,
    /// How far a signed timestamp may be from `now_unix`, either way.
    pub tolerance: Duration,
}

impl VerifyOptions {
    /// Options at `now_unix` with [`DEFAULT_TOLERANCE`].
    pub fn at(now_unix: i64) -> Self {
        VerifyOptions {
            now_unix,
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// The same options with another tolerance.
    pub fn with_tolerance(self, tolerance: Duration) -> Self {
        VerifyOptions { tolerance, ..self }
    }
}

/// Which check let a delivery in, for the delivery's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `X-Hub-Signature-256: sha256=<hex>` (GitHub; Gitea's and Forgejo's copy).
    HubSignature256,
    /// `X-Gitea-Signature: <hex>` (Gitea; Forgejo's copy).
    GiteaSignature,
    /// `X-Forgejo-Signature: <hex>`.
    ForgejoSignature,
    /// Bitbucket Cloud's `X-Hub-Signature: sha256=<hex>`.
    BitbucketSignature,
    /// GitLab's `X-Gitlab-Token: <secret>`.
    GitLabToken,
    /// GitLab's signing token: `webhook-signature: v1,<base64>`.
    GitLabSigningToken,
}

impl Scheme {
    /// The header the scheme reads its proof from.
    pub fn header(self) -> &'static str {
        match self {
            Scheme::HubSignature256 => HUB_SHA256,
            Scheme::GiteaSignature => GITEA_SIGNATURE,
            Scheme::ForgejoSignature => FORGEJO_SIGNATURE,
            Scheme::BitbucketSignature => HUB_SIGNATURE,
            Scheme::GitLabToken => GITLAB_TOKEN,
            Scheme::GitLabSigningToken => WEBHOOK_SIGNATURE,
        }
    }
}

const HUB_SHA256: &str = "X-Hub-Signature-256";
const HUB_SIGNATURE: &str = "X-Hub-Signature";
const GITEA_SIGNATURE: &str = "X-Gitea-Signature";
const FORGEJO_SIGNATURE: &str = "X-Forgejo-Signature";
const GITLAB_TOKEN: &str = "X-Gitlab-Token";
const WEBHOOK_SIGNATURE: &str = "webhook-signature";
const WEBHOOK_ID: &str = "webhook-id";
const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";

/// Why a delivery was refused. Each is answered with 401 and nothing is
/// enqueued; the message is for the delivery's record and the server log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    /// The app has no hook secret.
    #[error(
        "the {forge} delivery was refused because the app has no webhook secret; set one with `wharf hooks secret APP` and give {forge} the same value"
    )]
    NoSecret { forge: Forge },
    /// The app's hook secret is empty (or only whitespace).
    #[error(
        "the {forge} delivery was refused because the app's webhook secret is empty; set a new one with `wharf hooks secret APP` and give {forge} the same value"
    )]
    EmptySecret { forge: Forge },
    /// The header that carries the signature or token is absent.
    #[error(
        "the {forge} delivery was refused because it has no `{header}` header; give the webhook in {forge} the app's secret"
    )]
    MissingSignature { forge: Forge, header: &'static str },
    /// The header is there but cannot be read as the forge's format.
    #[error(
        "the {forge} delivery was refused because its `{header}` header is malformed: {reason}; check the webhook's settings in {forge}"
    )]
    MalformedSignature {
        forge: Forge,
        header: &'static str,
        reason: &'static str,
    },
    /// The signature or token does not match the secret and body.
    #[error(
        "the {forge} delivery was refused because its `{header}` does not match the app's webhook secret; give {forge} the same secret as `wharf hooks secret APP`"
    )]
    BadSignature { forge: Forge, header: &'static str },
    /// A GitLab signing-token delivery whose signed timestamp is too far
    /// from the server's clock (a replay, or a clock that is off).
    #[error(
        "the {forge} delivery was refused as a possible replay: its signed `webhook-timestamp` is {skew_secs}s from this server's clock, more than the {tolerance_secs}s allowed; if it was not replayed, check both clocks"
    )]
    StaleTimestamp {
        forge: Forge,
        skew_secs: u64,
        tolerance_secs: u64,
    },
    /// A GitLab signing-token delivery, but the app's secret is not a
    /// signing token (`whsec_` then base64).
    #[error(
        "the {forge} delivery was refused because it is signed with a signing token but the app's webhook secret is not one; set the same `whsec_…` value with `wharf hooks secret APP`"
    )]
    SecretNotSigningToken { forge: Forge },
}

/// Checks that a delivery from `forge` was sent by someone who knows
/// `secret`, over the raw `body` exactly as received.
///
/// `secret` is the app's hook secret, `None` when none is set. Returns the
/// scheme that matched. Never panics, whatever the headers and body.
pub fn verify(
    forge: Forge,
    headers: &HeaderMap,
    body: &[u8],
    secret: Option<&str>,
    options: VerifyOptions,
) -> Result<Scheme, VerifyError> {
    let secret = match secret {
        None => return Err(VerifyError::NoSecret { forge }),
        Some(secret) if secret.trim().is_empty() => {
            return Err(VerifyError::EmptySecret { forge });
        }
        Some(secret) => secret,
    };
    match forge {
        Forge::GitHub => check_hmac(
            forge,
            headers,
            body,
            secret,
            &[(Scheme::HubSignature256, Format::Sha256Prefixed)],
        ),
        Forge::Gitea => check_hmac(
            forge,
            headers,
            body,
            secret,
            &[
                (Scheme::GiteaSignature, Format::BareHex),
                (Scheme::HubSignature256, Format::Sha256Prefixed),
            ],
        ),
        Forge::Forgejo => check_hmac(
            forge,
            headers,
            body,
            secret,
            &[
                (Scheme::ForgejoSignature, Format::BareHex),
                (Scheme::GiteaSignature, Format::BareHex),
                (Scheme::HubSignature256, Format::Sha256Prefixed),
            ],
        ),
        Forge::Bitbucket => check_hmac(
            forge,
            headers,
            body,
            secret,
            &[(Scheme::BitbucketSignature, Format::Sha256Prefixed)],
        ),
        Forge::GitLab => {
            if headers.contains_key(WEBHOOK_SIGNATURE) {
                check_signing_token(forge, headers, body, secret, options)
            } else {
                check_gitlab_token(forge, headers, secret)
            }
        }
    }
}

/// How a hex HMAC is written in its header.
#[derive(Debug, Clone, Copy)]
enum Format {
    /// `sha256=<64 hex digits>`.
    Sha256Prefixed,
    /// `<64 hex digits>`.
    BareHex,
}

/// Checks the first header of `candidates` that is present; the others
/// are not looked at.
fn check_hmac(
    forge: Forge,
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
    candidates: &[(Scheme, Format)],
) -> Result<Scheme, VerifyError> {
    let first_header = candidates
        .first()
        .map_or(HUB_SHA256, |(scheme, _)| scheme.header());
    for &(scheme, format) in candidates {
        let header = scheme.header();
        let malformed = |reason| VerifyError::MalformedSignature {
            forge,
            header,
            reason,
        };
        let value = match single_header(headers, header) {
            Ok(None) => continue,
            Ok(Some(value)) => value,
            Err(()) => return Err(malformed("sent more than once, or not plain text")),
        };
        let digits = match format {
            Format::BareHex => value,
            Format::Sha256Prefixed => match value.strip_prefix("sha256=") {
                Some(digits) => digits,
                None if value.starts_with("sha1=") => {
                    return Err(malformed(
                        "it is a SHA-1 signature; only `sha256=` is accepted",
                    ));
                }
                None => return Err(malformed("it does not start with `sha256=`")),
            },
        };
        let expected = decode_hex_digest(digits)
            .ok_or_else(|| malformed("the signature is not 64 hexadecimal digits"))?;
        let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
            return Err(VerifyError::BadSignature { forge, header });
        };
        mac.update(body);
        return match mac.verify_slice(&expected) {
            Ok(()) => Ok(scheme),
            Err(_) => Err(VerifyError::BadSignature { forge, header }),
        };
    }
    Err(VerifyError::MissingSignature {
        forge,
        header: first_header,
    })
}

/// 64 hex digits (either case) into 32 bytes.
fn decode_hex_digest(digits: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

/// GitLab's classic secret token, compared in constant time. Both sides
/// are hashed first so that not even the token's length shows in timing.
fn check_gitlab_token(
    forge: Forge,
    headers: &HeaderMap,
    secret: &str,
) -> Result<Scheme, VerifyError> {
    let header = GITLAB_TOKEN;
    let token = match single_header(headers, header) {
        Ok(Some(token)) => token,
        Ok(None) => return Err(VerifyError::MissingSignature { forge, header }),
        Err(()) => {
            return Err(VerifyError::MalformedSignature {
                forge,
                header,
                reason: "sent more than once, or not plain text",
            });
        }
    };
    let sent = Sha256::digest(token.as_bytes());
    let wanted = Sha256::digest(secret.as_bytes());
    if bool::from(sent.as_slice().ct_eq(wanted.as_slice())) {
        Ok(Scheme::GitLabToken)
    } else {
        Err(VerifyError::BadSignature { forge, header })
    }
}

/// GitLab 19.x signing tokens: Standard Webhooks `v1` signatures.
fn check_signing_token(
    forge: Forge,
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
    options: VerifyOptions,
) -> Result<Scheme, VerifyError> {
    let required = |header: &'static str| match single_header(headers, header) {
        Ok(Some(value)) if !value.is_empty() => Ok(value),
        Ok(_) => Err(VerifyError::MalformedSignature {
            forge,
            header,
            reason: "it is missing or empty on a signed delivery",
        }),
        Err(()) => Err(VerifyError::MalformedSignature {
            forge,
            header,
            reason: "sent more than once, or not plain text",
        }),
    };
    let signatures = required(WEBHOOK_SIGNATURE)?;
    let id = required(WEBHOOK_ID)?;
    let timestamp = required(WEBHOOK_TIMESTAMP)?;

    if id.contains('.') {
        return Err(VerifyError::MalformedSignature {
            forge,
            header: WEBHOOK_ID,
            reason: "it contains a `.`",
        });
    }
    let signed_at = parse_unix_seconds(timestamp).ok_or(VerifyError::MalformedSignature {
        forge,
        header: WEBHOOK_TIMESTAMP,
        reason: "it is not a number of seconds",
    })?;

    let key = secret
        .strip_prefix("whsec_")
        .and_then(|encoded| BASE64.decode(encoded).ok())
        .filter(|key| !key.is_empty())
        .ok_or(VerifyError::SecretNotSigningToken { forge })?;

    let candidates: Vec<Vec<u8>> = signatures
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::MalformedSignature {
            forge,
            header: WEBHOOK_SIGNATURE,
            reason: "it holds no `v1,<base64>` signature",
        });
    }

    let Ok(mut mac) = HmacSha256::new_from_slice(&key) else {
        return Err(VerifyError::SecretNotSigningToken { forge });
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let computed = mac.finalize().into_bytes();
    // Every candidate is compared, so timing does not tell which matched.
    let matched = candidates
        .iter()
        .fold(subtle::Choice::from(0), |any, candidate| {
            any | computed.as_slice().ct_eq(candidate.as_slice())
        });
    if !bool::from(matched) {
        return Err(VerifyError::BadSignature {
            forge,
            header: WEBHOOK_SIGNATURE,
        });
    }

    let skew_secs = options.now_unix.abs_diff(signed_at);
    let tolerance_secs = options.tolerance.as_secs();
    if skew_secs > tolerance_secs {
        return Err(VerifyError::StaleTimestamp {
            forge,
            skew_secs,
            tolerance_secs,
        });
    }
    Ok(Scheme::GitLabSigningToken)
}

/// Unix seconds as Standard Webhooks writes them: ASCII digits only.
fn parse_unix_seconds(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    /// GitHub's published test vector (notes §1.2).
    const GITHUB_VECTOR: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    const NOW: i64 = 1_767_225_600;

    fn headers(pairs: &[(&str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                map.append(name, value);
            }
        }
        map
    }

    fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    /// The headers each forge would send for `body` under `secret`.
    fn signed(forge: Forge, secret: &str, body: &[u8]) -> HeaderMap {
        let digest = hmac_hex(secret.as_bytes(), body);
        match forge {
            Forge::GitHub => headers(&[("X-Hub-Signature-256", format!("sha256={digest}"))]),
            Forge::Gitea => headers(&[
                ("X-Gitea-Signature", digest.clone()),
                ("X-Hub-Signature-256", format!("sha256={digest}")),
            ]),
            Forge::Forgejo => headers(&[
                ("X-Forgejo-Signature", digest.clone()),
                ("X-Gitea-Signature", digest.clone()),
                ("X-Hub-Signature-256", format!("sha256={digest}")),
            ]),
            Forge::Bitbucket => headers(&[("X-Hub-Signature", format!("sha256={digest}"))]),
            Forge::GitLab => headers(&[("X-Gitlab-Token", secret.to_owned())]),
        }
    }

    fn check(
        forge: Forge,
        map: &HeaderMap,
        body: &[u8],
        secret: Option<&str>,
    ) -> Result<Scheme, VerifyError> {
        verify(forge, map, body, secret, VerifyOptions::at(NOW))
    }

    #[test]
    fn github_published_test_vector() {
        assert_eq!(hmac_hex(SECRET.as_bytes(), BODY), GITHUB_VECTOR);
        let map = headers(&[("X-Hub-Signature-256", format!("sha256={GITHUB_VECTOR}"))]);
        assert_eq!(
            check(Forge::GitHub, &map, BODY, Some(SECRET)),
            Ok(Scheme::HubSignature256)
        );
        // Upper-case hex is the same digest.
        let map = headers(&[(
            "X-Hub-Signature-256",
            format!("sha256={}", GITHUB_VECTOR.to_uppercase()),
        )]);
        assert_eq!(
            check(Forge::GitHub, &map, BODY, Some(SECRET)),
            Ok(Scheme::HubSignature256)
        );
    }

    #[test]
    fn each_forge_accepts_its_own_signature() {
        let expected = [
            (Forge::GitHub, Scheme::HubSignature256),
            (Forge::GitLab, Scheme::GitLabToken),
            (Forge::Gitea, Scheme::GiteaSignature),
            (Forge::Forgejo, Scheme::ForgejoSignature),
            (Forge::Bitbucket, Scheme::BitbucketSignature),
        ];
        for (forge, scheme) in expected {
            let map = signed(forge, SECRET, BODY);
            assert_eq!(
                check(forge, &map, BODY, Some(SECRET)),
                Ok(scheme),
                "{forge}"
            );
        }
    }

    #[test]
    fn each_forge_refuses_a_tampered_body() {
        for forge in Forge::ALL {
            if forge == Forge::GitLab {
                continue; // the classic token signs nothing; see the signing-token tests
            }
            let map = signed(forge, SECRET, BODY);
            let err = check(forge, &map, b"Hello, World?", Some(SECRET));
            assert!(
                matches!(err, Err(VerifyError::BadSignature { .. })),
                "{forge}: {err:?}"
            );
        }
    }

    #[test]
    fn each_forge_refuses_a_wrong_secret() {
        for forge in Forge::ALL {
            let map = signed(forge, "another secret", BODY);
            let err = check(forge, &map, BODY, Some(SECRET));
            assert!(
                matches!(err, Err(VerifyError::BadSignature { .. })),
                "{forge}: {err:?}"
            );
        }
    }

    #[test]
    fn each_forge_refuses_when_no_secret_is_set() {
        for forge in Forge::ALL {
            let map = signed(forge, SECRET, BODY);
            assert_eq!(
                check(forge, &map, BODY, None),
                Err(VerifyError::NoSecret { forge })
            );
        }
    }

    #[test]
    fn each_forge_refuses_an_empty_secret() {
        for forge in Forge::ALL {
            // What a forge sends when its own secret is empty too: an
            // HMAC under the empty key (GitHub) or an empty header (Gitea).
            for map in [signed(forge, "", BODY), headers(&[])] {
                for secret in ["", "  "] {
                    assert_eq!(
                        check(forge, &map, BODY, Some(secret)),
                        Err(VerifyError::EmptySecret { forge }),
                        "{forge}"
                    );
                }
            }
        }
    }

    #[test]
    fn each_forge_refuses_a_missing_signature() {
        let expected = [
            (Forge::GitHub, "X-Hub-Signature-256"),
            (Forge::GitLab, "X-Gitlab-Token"),
            (Forge::Gitea, "X-Gitea-Signature"),
            (Forge::Forgejo, "X-Forgejo-Signature"),
            (Forge::Bitbucket, "X-Hub-Signature"),
        ];
        for (forge, header) in expected {
            let map = headers(&[("X-GitHub-Event", "push".into())]);
            assert_eq!(
                check(forge, &map, BODY, Some(SECRET)),
                Err(VerifyError::MissingSignature { forge, header })
            );
        }
    }

    #[test]
    fn malformed_headers_are_refused_not_panicked_on() {
        let digest = hmac_hex(SECRET.as_bytes(), BODY);
        let cases: Vec<(Forge, HeaderMap)> = vec![
            (
                Forge::GitHub,
                headers(&[("X-Hub-Signature-256", digest.clone())]),
            ),
            (
                Forge::GitHub,
                headers(&[("X-Hub-Signature-256", "sha256=".into())]),
            ),
            (
                Forge::GitHub,
                headers(&[("X-Hub-Signature-256", "sha256=zz".into())]),
            ),
            (
                Forge::GitHub,
                headers(&[("X-Hub-Signature-256", format!("sha256={digest}00"))]),
            ),
            (
                Forge::GitHub,
                headers(&[("X-Hub-Signature-256", format!("sha256={}", &digest[..63]))]),
            ),
            (
                Forge::GitHub,
                headers(&[
                    ("X-Hub-Signature-256", format!("sha256={digest}")),
                    ("X-Hub-Signature-256", format!("sha256={digest}")),
                ]),
            ),
            (
                Forge::Bitbucket,
                headers(&[("X-Hub-Signature", format!("sha1={}", &digest[..40]))]),
            ),
            (
                Forge::Gitea,
                headers(&[("X-Gitea-Signature", String::new())]),
            ),
            (
                Forge::Gitea,
                headers(&[("X-Gitea-Signature", format!("sha256={digest}"))]),
            ),
            (
                Forge::Forgejo,
                headers(&[("X-Forgejo-Signature", "é".into())]),
            ),
        ];
        for (forge, map) in cases {
            let err = check(forge, &map, BODY, Some(SECRET));
            assert!(
                matches!(err, Err(VerifyError::MalformedSignature { .. })),
                "{forge} {map:?}: {err:?}"
            );
        }
    }

    #[test]
    fn a_bad_forgejo_signature_is_not_rescued_by_a_good_copy() {
        let good = hmac_hex(SECRET.as_bytes(), BODY);
        let bad = hmac_hex(b"nope", BODY);
        let map = headers(&[
            ("X-Forgejo-Signature", bad.clone()),
            ("X-Gitea-Signature", good.clone()),
            ("X-Hub-Signature-256", format!("sha256={good}")),
        ]);
        assert_eq!(
            check(Forge::Forgejo, &map, BODY, Some(SECRET)),
            Err(VerifyError::BadSignature {
                forge: Forge::Forgejo,
                header: "X-Forgejo-Signature"
            })
        );
        let map = headers(&[
            ("X-Gitea-Signature", bad),
            ("X-Hub-Signature-256", format!("sha256={good}")),
        ]);
        assert!(matches!(
            check(Forge::Gitea, &map, BODY, Some(SECRET)),
            Err(VerifyError::BadSignature { .. })
        ));
    }

    #[test]
    fn gitea_and_forgejo_fall_back_to_their_copies() {
        let good = hmac_hex(SECRET.as_bytes(), BODY);
        let hub = headers(&[("X-Hub-Signature-256", format!("sha256={good}"))]);
        assert_eq!(
            check(Forge::Gitea, &hub, BODY, Some(SECRET)),
            Ok(Scheme::HubSignature256)
        );
        assert_eq!(
            check(Forge::Forgejo, &hub, BODY, Some(SECRET)),
            Ok(Scheme::HubSignature256)
        );
        let gitea = headers(&[("X-Gitea-Signature", good)]);
        assert_eq!(
            check(Forge::Forgejo, &gitea, BODY, Some(SECRET)),
            Ok(Scheme::GiteaSignature)
        );
    }

    #[test]
    fn github_sha1_only_is_missing_the_sha256_header() {
        let map = headers(&[("X-Hub-Signature", "sha1=0123".into())]);
        assert!(matches!(
            check(Forge::GitHub, &map, BODY, Some(SECRET)),
            Err(VerifyError::MissingSignature { .. })
        ));
    }

    // GitLab signing tokens (Standard Webhooks, notes §1.3 and §5).

    const SIGNING_KEY: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

    fn signing_token() -> String {
        format!("whsec_{}", BASE64.encode(SIGNING_KEY))
    }

    fn standard_signature(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }

    fn gitlab_signed(timestamp: i64, signature: String) -> HeaderMap {
        headers(&[
            ("X-Gitlab-Event", "Push Hook".into()),
            ("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W".into()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ])
    }

    fn gitlab_signed_at(timestamp: i64) -> HeaderMap {
        let sig = standard_signature(
            &SIGNING_KEY,
            "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            &timestamp.to_string(),
            BODY,
        );
        gitlab_signed(timestamp, sig)
    }

    #[test]
    fn gitlab_signing_token_inside_the_tolerance_is_accepted() {
        let token = signing_token();
        for offset in [0, 1, -1, 300, -300] {
            let map = gitlab_signed_at(NOW + offset);
            assert_eq!(
                check(Forge::GitLab, &map, BODY, Some(&token)),
                Ok(Scheme::GitLabSigningToken),
                "offset {offset}"
            );
        }
        let map = gitlab_signed_at(NOW - 3_000);
        let wide = VerifyOptions::at(NOW).with_tolerance(Duration::from_secs(3_600));
        assert_eq!(
            verify(Forge::GitLab, &map, BODY, Some(&token), wide),
            Ok(Scheme::GitLabSigningToken)
        );
    }

    #[test]
    fn gitlab_signing_token_outside_the_tolerance_is_refused() {
        let token = signing_token();
        for (offset, skew) in [(301, 301), (-301, 301), (-86_400, 86_400)] {
            let map = gitlab_signed_at(NOW + offset);
            assert_eq!(
                check(Forge::GitLab, &map, BODY, Some(&token)),
                Err(VerifyError::StaleTimestamp {
                    forge: Forge::GitLab,
                    skew_secs: skew,
                    tolerance_secs: 300
                })
            );
        }
        let map = gitlab_signed_at(NOW - 10);
        let tight = VerifyOptions::at(NOW).with_tolerance(Duration::from_secs(5));
        assert!(matches!(
            verify(Forge::GitLab, &map, BODY, Some(&token), tight),
            Err(VerifyError::StaleTimestamp { .. })
        ));
    }

    #[test]
    fn gitlab_signing_token_covers_id_timestamp_and_body() {
        let token = signing_token();
        let map = gitlab_signed_at(NOW);
        // Tampered body.
        assert!(matches!(
            check(Forge::GitLab, &map, b"Hello, World?", Some(&token)),
            Err(VerifyError::BadSignature { .. })
        ));
        // Re-dated: the timestamp is signed, so a fresh one breaks the signature.
        let old = standard_signature(
            &SIGNING_KEY,
            "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            &(NOW - 3_600).to_string(),
            BODY,
        );
        let map = gitlab_signed(NOW, old);
        assert!(matches!(
            check(Forge::GitLab, &map, BODY, Some(&token)),
            Err(VerifyError::BadSignature { .. })
        ));
        // A different id.
        let mut map = gitlab_signed_at(NOW);
        map.insert("webhook-id", HeaderValue::from_static("msg_other"));
        assert!(matches!(
            check(Forge::GitLab, &map, BODY, Some(&token)),
            Err(VerifyError::BadSignature { .. })
        ));
        // A wrong key.
        let sig = standard_signature(
            b"another key",
            "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            &NOW.to_string(),
            BODY,
        );
        let map = gitlab_signed(NOW, sig);
        assert!(matches!(
            check(Forge::GitLab, &map, BODY, Some(&token)),
            Err(VerifyError::BadSignature { .. })
        ));
    }

    #[test]
    fn gitlab_signing_token_accepts_any_of_several_signatures() {
        let token = signing_token();
        let good = standard_signature(
            &SIGNING_KEY,
            "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            &NOW.to_string(),
            BODY,
        );
        let list = format!("v1a,AAAA v1,{} {good}", BASE64.encode([7u8; 32]));
        let map = gitlab_signed(NOW, list);
        assert_eq!(
            check(Forge::GitLab, &map, BODY, Some(&token)),
            Ok(Scheme::GitLabSigningToken)
        );
    }

    #[test]
    fn gitlab_signing_token_is_not_rescued_by_the_plain_token() {
        let token = signing_token();
        let mut map = gitlab_signed(NOW, format!("v1,{}", BASE64.encode([0u8; 32])));
        map.insert(
            "X-Gitlab-Token",
            HeaderValue::from_str(&token).expect("visible ASCII"),
        );
        assert!(matches!(
            check(Forge::GitLab, &map, BODY, Some(&token)),
            Err(VerifyError::BadSignature {
                header: "webhook-signature",
                ..
            })
        ));
        // The other way round: `webhook-id`/`webhook-timestamp` alone (sent on
        // every delivery) leave the classic token in charge.
        let map = headers(&[
            ("webhook-id", "msg_1".into()),
            ("webhook-timestamp", NOW.to_string()),
            ("X-Gitlab-Token", SECRET.into()),
        ]);
        assert_eq!(
            check(Forge::GitLab, &map, BODY, Some(SECRET)),
            Ok(Scheme::GitLabToken)
        );
    }

    #[test]
    fn gitlab_signing_token_malformed_inputs() {
        let token = signing_token();
        let good = gitlab_signed_at(NOW);
        let mut cases: Vec<HeaderMap> = Vec::new();
        for (name, value) in [
            ("webhook-timestamp", "soon"),
            ("webhook-timestamp", "-5"),
            ("webhook-timestamp", "99999999999999999999999"),
            ("webhook-id", "msg.1"),
            ("webhook-id", ""),
            ("webhook-signature", "v1a,abcd"),
            ("webhook-signature", "v1,%%%"),
            ("webhook-signature", "sha256=abcd"),
        ] {
            let mut map = good.clone();
            map.insert(name, HeaderValue::from_static(value));
            cases.push(map);
        }
        let mut without_id = good.clone();
        without_id.remove("webhook-id");
        cases.push(without_id);
        let mut without_timestamp = good.clone();
        without_timestamp.remove("webhook-timestamp");
        cases.push(without_timestamp);
        for map in cases {
            let err = check(Forge::GitLab, &map, BODY, Some(&token));
            assert!(
                matches!(err, Err(VerifyError::MalformedSignature { .. })),
                "{map:?}: {err:?}"
            );
        }
    }

    #[test]
    fn gitlab_signing_token_needs_a_whsec_secret() {
        let map = gitlab_signed_at(NOW);
        for secret in ["plain secret", "whsec_", "whsec_!!!not base64"] {
            assert_eq!(
                check(Forge::GitLab, &map, BODY, Some(secret)),
                Err(VerifyError::SecretNotSigningToken {
                    forge: Forge::GitLab
                })
            );
        }
        assert_eq!(
            check(Forge::GitLab, &map, BODY, None),
            Err(VerifyError::NoSecret {
                forge: Forge::GitLab
            })
        );
        assert_eq!(
            check(Forge::GitLab, &map, BODY, Some("")),
            Err(VerifyError::EmptySecret {
                forge: Forge::GitLab
            })
        );
    }

    #[test]
    fn gitlab_token_must_match_exactly() {
        for sent in [
            "It's a Secret to Everybody ",
            "it's a secret to everybody",
            "It's a Secret",
        ] {
            let map = headers(&[("X-Gitlab-Token", sent.into())]);
            let err = check(Forge::GitLab, &map, BODY, Some(SECRET));
            // Header values are trimmed, so a trailing space still matches.
            if sent.trim() == SECRET {
                assert_eq!(err, Ok(Scheme::GitLabToken));
            } else {
                assert!(
                    matches!(err, Err(VerifyError::BadSignature { .. })),
                    "{sent}"
                );
            }
        }
    }

    #[test]
    fn messages_follow_the_style() {
        let err = VerifyError::BadSignature {
            forge: Forge::GitHub,
            header: "X-Hub-Signature-256",
        };
        assert_eq!(
            err.to_string(),
            "the GitHub delivery was refused because its `X-Hub-Signature-256` does not match the app's webhook secret; give GitHub the same secret as `wharf hooks secret APP`"
        );
    }
}
