//! API tokens: their public id, scope, app, expiry and revocation, and the
//! SHA-256 of their secret (the secret itself is never stored).

use rusqlite::{OptionalExtension, Row, params};

use crate::{Store, StoreError, now_ms};

/// A token as `wharf token list` shows it (no hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    /// `read`, `deploy` or `admin`.
    pub scope: String,
    /// The one app it is limited to, if any.
    pub app: Option<String>,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    pub last_used_ms: Option<i64>,
}

/// A token to record.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub id: &'a str,
    pub secret_hash: &'a str,
    pub name: &'a str,
    pub scope: &'a str,
    pub app: Option<&'a str>,
    pub expires_ms: Option<i64>,
}

const TOKEN_COLS: &str = "id, name, scope, app, created_ms, expires_ms, revoked_ms, last_used_ms";

fn token_row(r: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        scope: r.get(2)?,
        app: r.get(3)?,
        created_ms: r.get(4)?,
        expires_ms: r.get(5)?,
        revoked_ms: r.get(6)?,
        last_used_ms: r.get(7)?,
    })
}

impl Store {
    pub fn create_token(&self, t: &NewToken<'_>) -> Result<TokenRow, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO api_tokens (id, secret_hash, name, scope, app, created_ms, expires_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                t.id,
                t.secret_hash,
                t.name,
                t.scope,
                t.app,
                now_ms(),
                t.expires_ms
            ],
        )?;
        Ok(conn.query_row(
            &format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE id = ?1"),
            [t.id],
            token_row,
        )?)
    }

    /// The token `id` and its secret's hash, to check a presented token.
    pub fn token_for_auth(&self, id: &str) -> Result<Option<(TokenRow, String)>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {TOKEN_COLS}, secret_hash FROM api_tokens WHERE id = ?1"),
                [id],
                |r| Ok((token_row(r)?, r.get(8)?)),
            )
            .optional()?)
    }

    /// Every token, newest first.
    pub fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {TOKEN_COLS} FROM api_tokens ORDER BY created_ms DESC, id"
        ))?;
        let rows = stmt.query_map([], token_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes `id`; false when there is no such token. Revoking twice
    /// keeps the first time.
    pub fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE api_tokens SET revoked_ms = COALESCE(revoked_ms, ?2) WHERE id = ?1",
            params![id, now_ms()],
        )?;
        Ok(n > 0)
    }

    /// Records that `id` was just used (shown by `wharf token list`).
    pub fn token_used(&self, id: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE api_tokens SET last_used_ms = ?2 WHERE id = ?1",
            params![id, now_ms()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_recorded_listed_and_revoked() {
        let store = Store::open_in_memory().expect("store");
        let made = store
            .create_token(&NewToken {
                id: "0123456789abcdef",
                secret_hash: "hash",
                name: "ci",
                scope: "deploy",
                app: Some("shop"),
                expires_ms: Some(42),
            })
            .expect("create");
        assert_eq!(made.scope, "deploy");
        let (row, hash) = store
            .token_for_auth("0123456789abcdef")
            .expect("query")
            .expect("found");
        assert_eq!((row.app.as_deref(), hash.as_str()), (Some("shop"), "hash"));
        assert!(store.token_for_auth("nope").expect("query").is_none());
        assert_eq!(store.tokens().expect("list").len(), 1);
        assert!(store.revoke_token("0123456789abcdef").expect("revoke"));
        assert!(!store.revoke_token("nope").expect("revoke"));
        let revoked = store.tokens().expect("list")[0].revoked_ms;
        assert!(revoked.is_some());
        store.revoke_token("0123456789abcdef").expect("revoke");
        assert_eq!(store.tokens().expect("list")[0].revoked_ms, revoked);
        // A scope outside the three is refused by the schema.
        assert!(
            store
                .create_token(&NewToken {
                    id: "x",
                    secret_hash: "h",
                    name: "",
                    scope: "root",
                    app: None,
                    expires_ms: None,
                })
                .is_err()
        );
    }
}
