-- Forge webhooks (`POST /hooks/{app}`): every delivery that passed its
-- signature check, and what wharf did with it. The row is inserted in the
-- same transaction as the pipeline job it queues, so a delivery is either
-- recorded with its job or not at all.
--
-- De-duplication is a security control here, not an optimisation: only
-- GitLab's signing tokens sign a timestamp, so for every other forge a
-- captured delivery replays cleanly unless it is remembered. A delivery
-- whose key (the forge's delivery id) or whose exact body was seen before
-- for the app and forge is a duplicate: nothing is inserted or queued,
-- and the first delivery's row counts the repeat. Rows are therefore kept
-- (never pruned): forgetting one would let its capture replay.
--
-- `app` is the app's name, not a reference to `apps` (as in `jobs`);
-- `outcome` has no CHECK so later outcomes need no table rebuild
-- (wharf_store::HookOutcome is the check).
CREATE TABLE hook_deliveries (
    id             INTEGER PRIMARY KEY,
    app            TEXT NOT NULL,
    -- `github`, `gitlab`, `gitea`, `forgejo`, `bitbucket`.
    forge          TEXT NOT NULL,
    -- The forge's delivery id (GitHub `X-GitHub-Delivery`, GitLab
    -- `Idempotency-Key`/`webhook-id`, …), or one made from the body's hash.
    delivery_key   TEXT NOT NULL,
    -- SHA-256 of the raw body, hex.
    body_sha256    TEXT NOT NULL,
    -- The event as the forge names it (`push`, `ping`, `Push Hook`, …).
    event          TEXT NOT NULL,
    -- A push: its full ref, commit after the push and repository.
    ref_name       TEXT,
    commit_sha     TEXT,
    repo           TEXT,
    received_ms    INTEGER NOT NULL,
    -- `queued`, `ping`, `ignored_event`, `ignored_branch`,
    -- `ignored_deleted`, `invalid`.
    outcome        TEXT NOT NULL,
    -- Why, for people (no secrets).
    detail         TEXT,
    -- The pipeline job it queued (no foreign key: pruning jobs keeps this).
    job_id         INTEGER,
    -- Later deliveries refused as duplicates of this one, and the last's time.
    repeats        INTEGER NOT NULL DEFAULT 0,
    last_repeat_ms INTEGER
);
CREATE UNIQUE INDEX hook_deliveries_key ON hook_deliveries (app, forge, delivery_key);
CREATE UNIQUE INDEX hook_deliveries_body ON hook_deliveries (app, forge, body_sha256);
CREATE INDEX hook_deliveries_by_app ON hook_deliveries (app, id);

-- Deliveries refused (no secret set, missing or bad signature, stale
-- timestamp) are not stored one by one, since anyone can send them: one
-- row per app and forge counts them and keeps the last one's time and
-- reason, so the table cannot grow with an attacker's requests.
CREATE TABLE hook_refusals (
    app         TEXT NOT NULL,
    forge       TEXT NOT NULL,
    count       INTEGER NOT NULL,
    first_ms    INTEGER NOT NULL,
    last_ms     INTEGER NOT NULL,
    last_reason TEXT NOT NULL,
    PRIMARY KEY (app, forge)
) WITHOUT ROWID;
