-- API tokens for the https:// listener. `id` is the token's public part;
-- only the SHA-256 of its secret is kept, never the secret. A revoked or
-- expired token stays listed (with when) until removed by hand.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    secret_hash  TEXT NOT NULL,
    name         TEXT NOT NULL DEFAULT '',
    scope        TEXT NOT NULL CHECK (scope IN ('read', 'deploy', 'admin')),
    app          TEXT,
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER,
    revoked_ms   INTEGER,
    last_used_ms INTEGER
);
