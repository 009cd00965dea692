-- Apps known to this server. `current_release` is THE serving release: it
-- changes only in the same transaction that records a deploy's `switched`
-- transition, so after a crash it is the one truth to converge to.
CREATE TABLE apps (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    source_dir      TEXT NOT NULL,
    current_release INTEGER,
    created_ms      INTEGER NOT NULL
);

-- Immutable numbered versions of an app.
CREATE TABLE releases (
    app_id      INTEGER NOT NULL REFERENCES apps(id),
    number      INTEGER NOT NULL,
    revision    TEXT,
    config_json TEXT NOT NULL,
    dir         TEXT,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'failed', 'pruned')),
    created_ms  INTEGER NOT NULL,
    PRIMARY KEY (app_id, number)
);

CREATE TABLE deploys (
    id           INTEGER PRIMARY KEY,
    app_id       INTEGER NOT NULL REFERENCES apps(id),
    kind         TEXT NOT NULL CHECK (kind IN ('deploy', 'rollback', 'restore')),
    from_release INTEGER,
    to_release   INTEGER,
    state        TEXT NOT NULL,
    outcome      TEXT CHECK (outcome IN ('succeeded', 'failed', 'interrupted')),
    error        TEXT,
    started_ms   INTEGER NOT NULL,
    finished_ms  INTEGER
);
-- One deploy at a time per app, enforced by the database itself.
CREATE UNIQUE INDEX deploys_one_running ON deploys (app_id) WHERE outcome IS NULL;

CREATE TABLE deploy_transitions (
    deploy_id INTEGER NOT NULL REFERENCES deploys(id),
    seq       INTEGER NOT NULL,
    state     TEXT NOT NULL,
    at_ms     INTEGER NOT NULL,
    detail    TEXT,
    PRIMARY KEY (deploy_id, seq)
);

CREATE TABLE instances (
    id         TEXT PRIMARY KEY,
    app_id     INTEGER NOT NULL REFERENCES apps(id),
    release    INTEGER NOT NULL,
    process    TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    port       INTEGER NOT NULL,
    pid        INTEGER,
    state      TEXT NOT NULL CHECK (state IN ('starting', 'healthy', 'unhealthy', 'restarting', 'stopping', 'stopped', 'failed')),
    started_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX instances_by_app ON instances (app_id, state);

CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    app_id    INTEGER REFERENCES apps(id),
    deploy_id INTEGER REFERENCES deploys(id),
    at_ms     INTEGER NOT NULL,
    level     TEXT NOT NULL CHECK (level IN ('info', 'warn', 'error')),
    message   TEXT NOT NULL
);
CREATE INDEX events_by_app ON events (app_id, id);
