//! The HTTP-01 challenges in flight: token → key authorization, for the
//! proxy to answer at `/.well-known/acme-challenge/<token>` on its plain
//! listener.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

/// The HTTP-01 tokens wharf is answering right now.
#[derive(Debug, Default)]
pub struct Challenges {
    tokens: RwLock<HashMap<String, String>>,
}

impl Challenges {
    /// No token.
    pub fn new() -> Self {
        Self::default()
    }

    /// The body to answer for `token` (its key authorization), if wharf is
    /// waiting for a validation of it. Any input is safe.
    pub fn answer(&self, token: &str) -> Option<String> {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    /// Starts answering `token` with `key_authorization`.
    pub fn insert(&self, token: impl Into<String>, key_authorization: impl Into<String>) {
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.into(), key_authorization.into());
    }

    /// Stops answering `token`.
    pub fn remove(&self, token: &str) {
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
    }

    /// How many tokens are answered.
    pub fn len(&self) -> usize {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no token is answered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_tokens_in_flight() {
        let challenges = Challenges::new();
        assert_eq!(challenges.answer("abc"), None);
        challenges.insert("abc", "abc.thumb");
        assert_eq!(challenges.answer("abc").as_deref(), Some("abc.thumb"));
        assert_eq!(challenges.answer("ABC"), None);
        assert_eq!(challenges.answer("../abc"), None);
        assert_eq!(challenges.len(), 1);
        challenges.remove("abc");
        assert!(challenges.is_empty());
        assert_eq!(challenges.answer("abc"), None);
    }
}
