//! Host names: which names the store accepts (they become directory names,
//! so nothing may escape the directory), and how a name is matched by a
//! certificate's DNS names.

use crate::TlsError;

/// The longest DNS name (RFC 1035, without the trailing dot).
const MAX_NAME: usize = 253;
/// The longest DNS label.
const MAX_LABEL: usize = 63;

/// Checks that `host` is a lowercase DNS name (`shop.example.com`), or a
/// wildcard one level deep (`*.example.com`). Anything else, in particular
/// anything with `/`, `..`, upper case or control characters, is refused,
/// so a valid host is always a safe single path component.
pub fn validate_host(host: &str) -> Result<(), TlsError> {
    let refuse = |reason| {
        Err(TlsError::InvalidHost {
            host: host.escape_debug().to_string(),
            reason,
        })
    };
    if host.is_empty() {
        return refuse("the name is empty");
    }
    if host.len() > MAX_NAME {
        return refuse("the name is longer than 253 characters");
    }
    if host.ends_with('.') {
        return refuse("the name ends with a dot");
    }
    let mut labels = host.split('.').peekable();
    let wildcard = labels.peek() == Some(&"*");
    if wildcard {
        labels.next();
        if host.split('.').count() < 3 {
            return refuse("a wildcard needs at least two labels after `*.`");
        }
    }
    for label in labels {
        if label.is_empty() {
            return refuse("the name has an empty label");
        }
        if label.len() > MAX_LABEL {
            return refuse("a label is longer than 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return refuse("a label starts or ends with `-`");
        }
        if label.bytes().any(|b| b.is_ascii_uppercase()) {
            return refuse("the name has upper-case letters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return refuse("only a-z, 0-9, `-` and `.` are allowed (and `*.` at the start)");
        }
    }
    Ok(())
}

/// Whether `host` is a wildcard name (`*.example.com`).
pub(crate) fn is_wildcard(host: &str) -> bool {
    host.starts_with("*.")
}

/// Lower-cases a server name from a client (SNI) and drops one trailing dot.
pub(crate) fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// The name one level up: `a.example.com` → `example.com`.
pub(crate) fn parent(name: &str) -> Option<&str> {
    let (first, rest) = name.split_once('.')?;
    if first.is_empty() || rest.is_empty() {
        return None;
    }
    Some(rest)
}

/// Whether a certificate name (`pattern`, lower case: exact or `*.`
/// wildcard) covers `host`. A wildcard covers exactly one label, never the
/// bare parent; a wildcard host is covered only by the same wildcard.
pub(crate) fn covers(pattern: &str, host: &str) -> bool {
    if pattern == host {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) if !is_wildcard(host) => parent(host) == Some(suffix),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lowercase_dns_names_and_one_level_wildcards() {
        for host in [
            "shop.example.com",
            "localhost",
            "a-b.c9.example",
            "*.example.com",
            "xn--bcher-kva.example",
        ] {
            assert!(validate_host(host).is_ok(), "{host}");
        }
    }

    #[test]
    fn refuses_anything_that_could_escape_the_directory_or_is_not_a_name() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}.com", ["abcdefghi"; 30].join("."));
        for host in [
            "",
            ".",
            "..",
            "../etc",
            "a/../../b",
            "a/b",
            "/abs",
            "a\\b",
            "a..b",
            ".a.com",
            "a.com.",
            "Shop.example.com",
            "-a.com",
            "a-.com",
            "a b.com",
            "a\0.com",
            "a\n.com",
            "*.com",
            "a.*.com",
            "**.example.com",
            "*",
            "é.com",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            assert!(validate_host(host).is_err(), "{host:?} was accepted");
        }
    }

    #[test]
    fn the_error_names_the_host_and_what_to_do() {
        let err = validate_host("../x").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "`../x` is not a host name wharf can hold a certificate for: the name has an empty label; use a lowercase DNS name such as `shop.example.com`"
            )
        );
    }

    #[test]
    fn coverage_is_exact_or_one_wildcard_level() {
        let cases = [
            ("shop.example.com", "shop.example.com", true),
            ("*.example.com", "shop.example.com", true),
            ("*.example.com", "a.shop.example.com", false),
            ("*.example.com", "example.com", false),
            ("*.example.com", "*.example.com", true),
            ("*.shop.example.com", "*.example.com", false),
            ("shop.example.com", "other.example.com", false),
            ("*.example.com", "shop.example.org", false),
        ];
        for (pattern, host, want) in cases {
            assert_eq!(covers(pattern, host), want, "{pattern} covers {host}");
        }
    }

    #[test]
    fn normalize_lowercases_and_drops_a_trailing_dot() {
        assert_eq!(normalize("Shop.Example.COM."), "shop.example.com");
        assert_eq!(parent("a.b.c"), Some("b.c"));
        assert_eq!(parent("abc"), None);
        assert_eq!(parent(".abc"), None);
    }
}
