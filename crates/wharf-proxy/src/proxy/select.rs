//! Choosing a request's release group and backend from the table:
//! override (with the server's token), sticky cookie, weighted pick.

use http::header::{self, HeaderMap, HeaderValue};

use super::headers::{X_WHARF_RELEASE, X_WHARF_TOKEN};
use crate::{Backend, RoutingTable};
use std::sync::Arc;

/// The release group (and backend) a request goes to, or why none.
pub(crate) enum Choice<'t> {
    Picked {
        group: usize,
        backend: &'t Arc<Backend>,
        /// `Set-Cookie` for the response: a new or changed sticky assignment.
        set_cookie: Option<HeaderValue>,
    },
    /// Nothing can take the request (503 "no healthy instance").
    NoBackend,
    /// An override names a release the route doesn't have.
    NotServing(u64),
    /// An override with a valid token and an unreadable release number.
    BadRelease,
}

/// A release asked for explicitly (see [`ProxyConfig::override_token`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Override {
    Release(u64),
    Invalid,
}

/// The override a request asks for, if it carries the right token.
pub(crate) fn requested_override(token: Option<&str>, h: &HeaderMap) -> Option<Override> {
    let token = token.filter(|t| !t.is_empty())?;
    let release = h.get(&X_WHARF_RELEASE)?;
    let given = h.get(&X_WHARF_TOKEN)?;
    if !ct_eq(given.as_bytes(), token.as_bytes()) {
        return None;
    }
    Some(parse_release(release.as_bytes()).map_or(Override::Invalid, Override::Release))
}

/// Whether `a == b`, in time that depends on the lengths only: every byte
/// is compared, the first difference doesn't end the loop.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A release number: ASCII digits, optionally in double quotes (as cookie
/// values may be) and surrounded by spaces.
pub(crate) fn parse_release(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    let v = v
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(v);
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The values of every cookie called `name` in the request's `Cookie`
/// headers, in order. Any bytes are tolerated: several headers, spaces,
/// empty or `=`-less pairs, non-UTF-8.
pub(crate) fn cookie_values<'a>(
    h: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    h.get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter_map(move |pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (k, v) = pair.split_at(eq);
            let v = v.get(1..).unwrap_or_default();
            (k.trim_ascii() == name.as_bytes()).then(|| v.trim_ascii())
        })
}

/// Chooses the release group and backend of route `idx` for a request with
/// headers `h` (see the module docs for the order of the rules).
pub(crate) fn choose<'t>(
    table: &'t RoutingTable,
    idx: usize,
    h: &HeaderMap,
    token: Option<&str>,
) -> Choice<'t> {
    match requested_override(token, h) {
        Some(Override::Release(release)) => {
            return match table.release_group(idx, release) {
                None => Choice::NotServing(release),
                Some(group) => match table.pick_in(idx, group) {
                    Some(backend) => Choice::Picked {
                        group,
                        backend,
                        set_cookie: None,
                    },
                    None => Choice::NoBackend,
                },
            };
        }
        Some(Override::Invalid) => return Choice::BadRelease,
        None => {}
    }
    let sticky = table.sticky(idx);
    if let Some(st) = sticky {
        let kept = cookie_values(h, st.cookie())
            .filter_map(parse_release)
            .find_map(|r| table.sticky_group(idx, r));
        if let Some(group) = kept
            && let Some(backend) = table.pick_in(idx, group)
        {
            return Choice::Picked {
                group,
                backend,
                set_cookie: None,
            };
        }
    }
    match table.pick(idx) {
        Some((group, backend)) => Choice::Picked {
            group,
            backend,
            set_cookie: sticky.and_then(|st| st.set_cookie(group)),
        },
        None => Choice::NoBackend,
    }
}
