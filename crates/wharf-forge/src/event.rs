//! What a delivery is, and the key to de-duplicate it on.
//!
//! [`classify`] reads the forge's event header (control-plane notes §1.1):
//! GitHub's `ping` is [`Event::Ping`]; GitHub's `push`, GitLab's
//! `Push Hook` and `Tag Push Hook`, Gitea's and Forgejo's `push` and
//! Bitbucket's `repo:push` are [`Event::Push`]; anything else is
//! [`Event::Other`] with its name kept for the delivery's record.
//!
//! [`delivery_key`] picks the forge's delivery id (notes §1 and §5), the
//! first present of:
//!
//! | forge | headers, in order | fallback |
//! |---|---|---|
//! | GitHub | `X-GitHub-Delivery` (same on redelivery) | body digest |
//! | GitLab | `webhook-id`, `Idempotency-Key` (same across retries) | body digest |
//! | Gitea | `X-Gitea-Delivery` | body digest |
//! | Forgejo | `X-Forgejo-Delivery`, `X-Gitea-Delivery` | body digest |
//! | Bitbucket Cloud | `X-Request-UUID` | `X-Hook-UUID` + body digest, else body digest |
//!
//! GitLab's `X-Gitlab-Webhook-UUID` is new on every retry, so it is never
//! used. `webhook-id` comes before `Idempotency-Key` (they carry the same
//! value) because a signing token signs `webhook-id` and not the other.
//!
//! Apart from GitLab's signed `webhook-id`, these headers are outside the
//! signature: someone who captured a signed body can resend it under a new
//! id. The key therefore also carries the body's SHA-256, so the store can
//! refuse a body it has already accepted from the same forge and app.

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::forge::{Forge, single_header};

/// What a delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Event {
    /// A forge checking the hook works (GitHub's `ping`): answer 200.
    Ping,
    /// A push of a branch or tag (see [`crate::parse_push`]).
    Push,
    /// Any other event, by the name the forge gave it; answered and
    /// recorded, not acted on.
    Other(String),
}

/// The event of a delivery from `forge`, or `None` when its event header
/// is absent or not text.
pub fn classify(forge: Forge, headers: &HeaderMap) -> Option<Event> {
    let name = event_name(forge, headers)?;
    let is = |word: &str| name.eq_ignore_ascii_case(word);
    let event = match forge {
        Forge::GitHub if is("ping") => Event::Ping,
        Forge::GitHub | Forge::Gitea | Forge::Forgejo if is("push") => Event::Push,
        Forge::GitLab if is("Push Hook") || is("Tag Push Hook") => Event::Push,
        Forge::Bitbucket if is("repo:push") => Event::Push,
        _ => Event::Other(name.to_owned()),
    };
    Some(event)
}

/// The event header's value; Forgejo's falls back to its Gitea copy.
fn event_name(forge: Forge, headers: &HeaderMap) -> Option<&str> {
    let read = |name: &str| single_header(headers, name).ok().flatten();
    let name = match forge {
        Forge::Forgejo => read(forge.event_header()).or_else(|| read("X-Gitea-Event")),
        _ => read(forge.event_header()),
    }?;
    (!name.is_empty()).then_some(name)
}

/// The key a delivery is de-duplicated on, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeliveryKey {
    /// The key: unique per forge, so store it beside the forge and app.
    pub id: String,
    /// Where [`id`](Self::id) came from.
    pub source: KeySource,
    /// Lower-case hex SHA-256 of the raw body, to refuse a body accepted
    /// before under another id.
    pub body_sha256: String,
}

/// Where a [`DeliveryKey`]'s id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// A delivery header, by name.
    Header(&'static str),
    /// Bitbucket's `X-Hook-UUID` with the body digest: `{hook}:sha256:{hex}`.
    HookAndBody,
    /// The body digest alone: `sha256:{hex}`.
    Body,
}

/// The longest header value taken as a delivery id.
const MAX_ID_LEN: usize = 200;

/// The de-duplication key of a delivery from `forge` (see the module
/// docs for which header each forge uses). Always gives a key: a missing,
/// empty, repeated, overlong or non-ASCII header falls back to the body's
/// digest.
pub fn delivery_key(forge: Forge, headers: &HeaderMap, body: &[u8]) -> DeliveryKey {
    let body_sha256 = hex::encode(Sha256::digest(body));
    let id_header = |name: &str| {
        single_header(headers, name)
            .ok()
            .flatten()
            .filter(|value| !value.is_empty() && value.len() <= MAX_ID_LEN)
            .map(str::to_owned)
    };
    let names: &[&'static str] = match forge {
        Forge::GitHub => &["X-GitHub-Delivery"],
        Forge::GitLab => &["webhook-id", "Idempotency-Key"],
        Forge::Gitea => &["X-Gitea-Delivery"],
        Forge::Forgejo => &["X-Forgejo-Delivery", "X-Gitea-Delivery"],
        Forge::Bitbucket => &["X-Request-UUID"],
    };
    for &name in names {
        if let Some(id) = id_header(name) {
            return DeliveryKey {
                id,
                source: KeySource::Header(name),
                body_sha256,
            };
        }
    }
    if forge == Forge::Bitbucket
        && let Some(hook) = id_header("X-Hook-UUID")
    {
        return DeliveryKey {
            id: format!("{hook}:sha256:{body_sha256}"),
            source: KeySource::HookAndBody,
            body_sha256,
        };
    }
    DeliveryKey {
        id: format!("sha256:{body_sha256}"),
        source: KeySource::Body,
        body_sha256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
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

    type Pairs<'a> = &'a [(&'a str, &'a str)];

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn classifies_each_forges_events() {
        let other = |name: &str| Some(Event::Other(name.to_owned()));
        let cases: &[(Forge, Pairs, Option<Event>)] = &[
            (
                Forge::GitHub,
                &[("X-GitHub-Event", "ping")],
                Some(Event::Ping),
            ),
            (
                Forge::GitHub,
                &[("X-GitHub-Event", "push")],
                Some(Event::Push),
            ),
            (
                Forge::GitHub,
                &[("X-GitHub-Event", "pull_request")],
                other("pull_request"),
            ),
            (Forge::GitHub, &[], None),
            (Forge::GitHub, &[("X-GitHub-Event", "")], None),
            (
                Forge::GitLab,
                &[("X-Gitlab-Event", "Push Hook")],
                Some(Event::Push),
            ),
            (
                Forge::GitLab,
                &[("X-Gitlab-Event", "Tag Push Hook")],
                Some(Event::Push),
            ),
            (
                Forge::GitLab,
                &[("X-Gitlab-Event", "Merge Request Hook")],
                other("Merge Request Hook"),
            ),
            (
                Forge::Gitea,
                &[("X-Gitea-Event", "push")],
                Some(Event::Push),
            ),
            (
                Forge::Gitea,
                &[("X-Gitea-Event", "create")],
                other("create"),
            ),
            (
                Forge::Forgejo,
                &[("X-Forgejo-Event", "push")],
                Some(Event::Push),
            ),
            (
                Forge::Forgejo,
                &[("X-Gitea-Event", "push")],
                Some(Event::Push),
            ),
            (
                Forge::Forgejo,
                &[("X-Forgejo-Event", "issues")],
                other("issues"),
            ),
            (
                Forge::Bitbucket,
                &[("X-Event-Key", "repo:push")],
                Some(Event::Push),
            ),
            (
                Forge::Bitbucket,
                &[("X-Event-Key", "pullrequest:created")],
                other("pullrequest:created"),
            ),
            // Only GitHub has a ping event in the notes.
            (Forge::Gitea, &[("X-Gitea-Event", "ping")], other("ping")),
        ];
        for (forge, pairs, expected) in cases {
            assert_eq!(
                classify(*forge, &headers(pairs)),
                *expected,
                "{forge} {pairs:?}"
            );
        }
    }

    #[test]
    fn picks_each_forges_delivery_header() {
        let cases: &[(Forge, Pairs, &str, KeySource)] = &[
            (
                Forge::GitHub,
                &[("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")],
                "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                KeySource::Header("X-GitHub-Delivery"),
            ),
            (
                Forge::GitLab,
                &[
                    ("X-Gitlab-Webhook-UUID", "per-request"),
                    ("Idempotency-Key", "f5d7b2a4-stable"),
                ],
                "f5d7b2a4-stable",
                KeySource::Header("Idempotency-Key"),
            ),
            (
                Forge::GitLab,
                &[("Idempotency-Key", "idem"), ("webhook-id", "signed-id")],
                "signed-id",
                KeySource::Header("webhook-id"),
            ),
            (
                Forge::Gitea,
                &[
                    ("X-GitHub-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
                    ("X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
                ],
                "f6266f16-1bf3-46a5-9ea4-602e06ead473",
                KeySource::Header("X-Gitea-Delivery"),
            ),
            (
                Forge::Forgejo,
                &[("X-Forgejo-Delivery", "a"), ("X-Gitea-Delivery", "b")],
                "a",
                KeySource::Header("X-Forgejo-Delivery"),
            ),
            (
                Forge::Forgejo,
                &[("X-Gitea-Delivery", "b")],
                "b",
                KeySource::Header("X-Gitea-Delivery"),
            ),
            (
                Forge::Bitbucket,
                &[("X-Request-UUID", "{req}"), ("X-Hook-UUID", "{hook}")],
                "{req}",
                KeySource::Header("X-Request-UUID"),
            ),
        ];
        for (forge, pairs, id, source) in cases {
            let key = delivery_key(*forge, &headers(pairs), b"");
            assert_eq!(key.id, *id, "{forge}");
            assert_eq!(key.source, *source, "{forge}");
            assert_eq!(key.body_sha256, EMPTY_SHA256);
        }
    }

    #[test]
    fn falls_back_to_the_body_digest() {
        let key = delivery_key(
            Forge::Bitbucket,
            &headers(&[("X-Hook-UUID", "{hook}")]),
            b"",
        );
        assert_eq!(key.id, format!("{{hook}}:sha256:{EMPTY_SHA256}"));
        assert_eq!(key.source, KeySource::HookAndBody);

        let long = "x".repeat(MAX_ID_LEN + 1);
        for (forge, pairs) in [
            (Forge::Bitbucket, vec![]),
            (Forge::GitHub, vec![("X-GitHub-Delivery", "")]),
            (Forge::GitHub, vec![("X-GitHub-Delivery", long.as_str())]),
            (
                Forge::GitHub,
                vec![("X-GitHub-Delivery", "a"), ("X-GitHub-Delivery", "b")],
            ),
            (
                Forge::GitLab,
                vec![("X-Gitlab-Webhook-UUID", "per-request")],
            ),
            (Forge::Gitea, vec![("X-GitHub-Delivery", "copy")]),
        ] {
            let key = delivery_key(forge, &headers(&pairs), b"");
            assert_eq!(
                key.id,
                format!("sha256:{EMPTY_SHA256}"),
                "{forge} {pairs:?}"
            );
            assert_eq!(key.source, KeySource::Body);
        }
    }
}
