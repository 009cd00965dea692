-- The durable job queue (wharf-jobs decides, this stores). Deploys,
-- rollbacks, restores, accessory boots, one-off runs, cron runs and
-- pipelines are jobs: per app one runs under a lease, the others wait.
--
-- `app` is the app's name, not a reference to `apps`: a first deploy is
-- queued before its app exists. `kind` has no CHECK so later kinds need no
-- table rebuild (wharf_jobs::JobKind is the check); `state` does.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    app              TEXT NOT NULL,
    kind             TEXT NOT NULL,
    -- The job's input as JSON; never a secret value (Invariant 4).
    args             TEXT NOT NULL DEFAULT '{}',
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'superseded', 'skipped')),
    -- Makes an enqueue idempotent: a cron run's (entry, scheduled time), a
    -- webhook delivery's id. A second enqueue with the key changes nothing.
    dedup_key        TEXT UNIQUE,
    -- Cron runs: which `[cron.NAME]` entry, for which scheduled time.
    cron_entry       TEXT,
    scheduled_ms     INTEGER,
    created_ms       INTEGER NOT NULL,
    -- First start (kept across resumed attempts) and end.
    started_ms       INTEGER,
    finished_ms      INTEGER,
    -- The runner holding (or that last held) the job, until when, and its
    -- last heartbeat.
    lease_owner      TEXT,
    lease_expires_ms INTEGER,
    heartbeat_ms     INTEGER,
    -- How many times a runner took the job: above 1 it was resumed.
    attempts         INTEGER NOT NULL DEFAULT 0,
    exit_code        INTEGER,
    error            TEXT,
    -- The newer job that replaced this one while it waited (no foreign
    -- key: pruning removes either side on its own).
    superseded_by    INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    -- Log lines appended so far (the last `job_logs.seq`).
    log_seq          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_by_app ON jobs (app, state, id);
CREATE INDEX jobs_by_state ON jobs (state, id);
-- One running job that changes the app per app, enforced by the database
-- itself (one-off and cron runs run beside it: `JobKind::exclusive`).
CREATE UNIQUE INDEX jobs_one_running ON jobs (app) WHERE state = 'running' AND kind NOT IN ('run', 'cron');
-- One record per cron entry and scheduled time, whatever its dedup key.
CREATE UNIQUE INDEX jobs_cron_once ON jobs (app, cron_entry, scheduled_ms) WHERE cron_entry IS NOT NULL;

-- A job is a list of recorded steps: a resumed runner reads them and skips
-- what an earlier attempt finished.
CREATE TABLE job_steps (
    job_id      INTEGER NOT NULL REFERENCES jobs(id),
    seq         INTEGER NOT NULL,
    -- The job attempt that ran the step.
    attempt     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'skipped', 'interrupted')),
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    -- For people (no secrets).
    detail      TEXT,
    -- For the runner: JSON progress a resumed attempt reads (no secrets).
    data        TEXT,
    PRIMARY KEY (job_id, seq)
);

-- A job's output and wharf's progress lines about it, capped per job (the
-- oldest lines go first; seq keeps counting).
CREATE TABLE job_logs (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    seq    INTEGER NOT NULL,
    ts_ms  INTEGER NOT NULL,
    stream TEXT NOT NULL,
    line   TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
