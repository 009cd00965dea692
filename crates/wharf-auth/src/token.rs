//! API tokens: `wharf_<id>_<secret>`, made from the system's random source,
//! stored as the SHA-256 of the secret, checked in constant time.

use sha2::{Digest, Sha256};

/// The text every wharf token starts with, so a leaked one is recognisable
/// (and secret scanners can be taught it).
pub const PREFIX: &str = "wharf_";
/// Bytes of randomness in the id (public) and the secret.
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "could not read the system's random source to make a token: {0}; check that /dev/urandom (getrandom) is available"
    )]
    Random(String),
}

/// A token just made: what to store, and the text to show once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Public id, 16 hex digits.
    pub id: String,
    /// SHA-256 of the secret, hex: the only form the store keeps.
    pub secret_hash: String,
    /// The whole token, to print once and never again.
    pub plain: String,
}

/// Makes a token.
pub fn generate() -> Result<NewToken, TokenError> {
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut id).map_err(|e| TokenError::Random(e.to_string()))?;
    getrandom::fill(&mut secret).map_err(|e| TokenError::Random(e.to_string()))?;
    let id = hex(&id);
    let secret = hex(&secret);
    Ok(NewToken {
        secret_hash: hash_secret(&secret),
        plain: format!("{PREFIX}{id}_{secret}"),
        id,
    })
}

/// A token as a client presented it, split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented<'a> {
    pub id: &'a str,
    pub secret: &'a str,
}

impl<'a> Presented<'a> {
    /// Reads an `Authorization` header value (`Bearer wharf_…`). `None`
    /// when it is not a wharf token of the right shape.
    pub fn from_header(value: &'a str) -> Option<Presented<'a>> {
        let (scheme, token) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        Self::parse(token.trim())
    }

    /// Reads a token's text.
    pub fn parse(token: &'a str) -> Option<Presented<'a>> {
        let rest = token.strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let is_hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        (is_hex(id, ID_BYTES * 2) && is_hex(secret, SECRET_BYTES * 2))
            .then_some(Presented { id, secret })
    }

    /// Whether this token's secret is the one whose hash was stored.
    pub fn matches(&self, secret_hash: &str) -> bool {
        constant_time_eq(hash_secret(self.secret).as_bytes(), secret_hash.as_bytes())
    }
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Equal bytes, in a time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_token_is_read_back_and_matches_only_its_hash() {
        let t = generate().expect("random");
        assert!(t.plain.starts_with("wharf_"));
        let p = Presented::parse(&t.plain).expect("parses");
        assert_eq!(p.id, t.id);
        assert!(p.matches(&t.secret_hash));
        let other = generate().expect("random");
        assert!(!p.matches(&other.secret_hash));
        assert_ne!(t.plain, other.plain);
        // The stored hash is not the secret.
        assert!(!t.plain.contains(&t.secret_hash));
    }

    #[test]
    fn headers_and_malformed_tokens() {
        let t = generate().expect("random");
        let header = format!("Bearer {}", t.plain);
        assert_eq!(
            Presented::from_header(&header).map(|p| p.id),
            Some(t.id.as_str())
        );
        assert!(Presented::from_header(&format!("bearer  {}", t.plain)).is_some());
        for bad in [
            "",
            "Bearer",
            "Basic d2hhcmY6eA==",
            "Bearer wharf_",
            "Bearer wharf_abc_def",
            "Bearer token",
            "Bearer wharf_0123456789abcdef_xyz",
        ] {
            assert_eq!(Presented::from_header(bad), None, "{bad:?}");
        }
        let mangled = t.plain.replace("wharf_", "wharf-");
        assert_eq!(Presented::parse(&mangled), None);
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
