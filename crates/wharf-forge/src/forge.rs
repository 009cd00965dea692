//! The forges wharf knows, and which one sent a webhook.
//!
//! Each forge names its event in its own header (control-plane notes §1.1).
//! Gitea copies GitHub's and Gogs' headers, and Forgejo copies Gitea's,
//! GitHub's and Gogs' (§1.4, §1.5), so [`detect`] looks for the most
//! specific header first: `X-Forgejo-Event`, then `X-Gitea-Event`, then
//! `X-Gitlab-Event`, then Bitbucket's `X-Event-Key` (with its
//! `X-Hook-UUID` or `X-Request-UUID`, §1.6), and `X-GitHub-Event` last.

use std::fmt;
use std::str::FromStr;

use http::HeaderMap;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A git forge that sends push webhooks and takes commit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forge {
    /// github.com or GitHub Enterprise Server.
    GitHub,
    /// gitlab.com or a self-managed GitLab.
    GitLab,
    /// Gitea.
    Gitea,
    /// Forgejo (Codeberg and self-hosted).
    Forgejo,
    /// Bitbucket Cloud (bitbucket.org), not Bitbucket Data Center.
    Bitbucket,
}

impl Forge {
    /// Every forge, in a stable order.
    pub const ALL: [Forge; 5] = [
        Forge::GitHub,
        Forge::GitLab,
        Forge::Gitea,
        Forge::Forgejo,
        Forge::Bitbucket,
    ];

    /// The lower-case word used in config, the store and `--json`
    /// (`github`, `gitlab`, `gitea`, `forgejo`, `bitbucket`).
    pub fn slug(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
            Forge::Gitea => "gitea",
            Forge::Forgejo => "forgejo",
            Forge::Bitbucket => "bitbucket",
        }
    }

    /// The name people know the forge by, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Forge::GitHub => "GitHub",
            Forge::GitLab => "GitLab",
            Forge::Gitea => "Gitea",
            Forge::Forgejo => "Forgejo",
            Forge::Bitbucket => "Bitbucket Cloud",
        }
    }

    /// The header that carries the event's name (notes §1.1).
    pub fn event_header(self) -> &'static str {
        match self {
            Forge::GitHub => "X-GitHub-Event",
            Forge::GitLab => "X-Gitlab-Event",
            Forge::Gitea => "X-Gitea-Event",
            Forge::Forgejo => "X-Forgejo-Event",
            Forge::Bitbucket => "X-Event-Key",
        }
    }
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A forge word that is none of [`Forge::slug`]'s.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown forge `{0}`; use one of `github`, `gitlab`, `gitea`, `forgejo`, `bitbucket`")]
pub struct UnknownForge(pub String);

impl FromStr for Forge {
    type Err = UnknownForge;

    /// Reads a slug, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Forge::ALL
            .into_iter()
            .find(|forge| forge.slug().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownForge(s.to_owned()))
    }
}

/// Which forge sent a request, from its headers; `None` when no forge's
/// event header is there (a request that is no webhook of a known forge).
pub fn detect(headers: &HeaderMap) -> Option<Forge> {
    let has = |name: &str| headers.contains_key(name);
    if has("X-Forgejo-Event") {
        Some(Forge::Forgejo)
    } else if has("X-Gitea-Event") {
        Some(Forge::Gitea)
    } else if has("X-Gitlab-Event") {
        Some(Forge::GitLab)
    } else if has("X-Event-Key") && (has("X-Hook-UUID") || has("X-Request-UUID")) {
        Some(Forge::Bitbucket)
    } else if has("X-GitHub-Event") {
        Some(Forge::GitHub)
    } else {
        None
    }
}

/// A header's value as text: `Ok(None)` when absent, `Err(())` when it is
/// sent more than once or is not visible ASCII. Leading and trailing
/// whitespace is dropped.
pub(crate) fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    first.to_str().map(|s| Some(s.trim())).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn detects_each_forge_from_what_it_sends() {
        type Pairs = &'static [(&'static str, &'static str)];
        let cases: &[(Pairs, Option<Forge>)] = &[
            (
                &[("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "d")],
                Some(Forge::GitHub),
            ),
            (&[("X-Gitlab-Event", "Push Hook")], Some(Forge::GitLab)),
            // Gitea sends GitHub's and Gogs' headers too (notes §1.4).
            (
                &[
                    ("X-GitHub-Event", "push"),
                    ("X-Gogs-Event", "push"),
                    ("X-Gitea-Event", "push"),
                ],
                Some(Forge::Gitea),
            ),
            // Forgejo sends Gitea's as well (notes §1.5).
            (
                &[
                    ("X-GitHub-Event", "push"),
                    ("X-Gitea-Event", "push"),
                    ("X-Forgejo-Event", "push"),
                ],
                Some(Forge::Forgejo),
            ),
            (
                &[
                    ("X-Event-Key", "repo:push"),
                    ("X-Hook-UUID", "{h}"),
                    ("X-Request-UUID", "{r}"),
                ],
                Some(Forge::Bitbucket),
            ),
            // Bitbucket Data Center's X-Event-Key alone is not Bitbucket Cloud.
            (&[("X-Event-Key", "repo:refs_changed")], None),
            (&[("Content-Type", "application/json")], None),
            (&[], None),
        ];
        for (pairs, expected) in cases {
            assert_eq!(detect(&headers(pairs)), *expected, "{pairs:?}");
        }
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let mut map = HeaderMap::new();
        map.insert("x-github-event", HeaderValue::from_static("push"));
        assert_eq!(detect(&map), Some(Forge::GitHub));
    }

    #[test]
    fn slugs_round_trip() {
        for forge in Forge::ALL {
            assert_eq!(forge.slug().parse::<Forge>(), Ok(forge));
            let json = serde_json::to_string(&forge).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", forge.slug()));
        }
        assert_eq!("GitHub".parse::<Forge>(), Ok(Forge::GitHub));
        let err = "gogs".parse::<Forge>().err();
        assert_eq!(err, Some(UnknownForge("gogs".into())));
    }

    #[test]
    fn single_header_refuses_repeats_and_binary() {
        let mut map = HeaderMap::new();
        assert_eq!(single_header(&map, "X-A"), Ok(None));
        map.append("X-A", HeaderValue::from_static(" one "));
        assert_eq!(single_header(&map, "x-a"), Ok(Some("one")));
        map.append("X-A", HeaderValue::from_static("two"));
        assert_eq!(single_header(&map, "X-A"), Err(()));
        let mut map = HeaderMap::new();
        let binary = HeaderValue::from_bytes(b"\xff\xfe").ok();
        if let Some(value) = binary {
            map.insert("X-B", value);
        }
        assert_eq!(single_header(&map, "X-B"), Err(()));
    }
}
