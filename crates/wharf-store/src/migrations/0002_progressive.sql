-- Progressive delivery: where a canary stands, and per-release request
-- metrics at a coarse resolution for history and comparisons.
ALTER TABLE deploys ADD COLUMN strategy TEXT NOT NULL DEFAULT 'blue-green';
-- Traffic share of the new release (0-100) while it is analysed.
ALTER TABLE deploys ADD COLUMN weight INTEGER;
-- The last analysis decision (JSON), e.g. the numbers that rolled it back.
ALTER TABLE deploys ADD COLUMN verdict TEXT;

CREATE TABLE release_metrics (
    app_id    INTEGER NOT NULL REFERENCES apps(id),
    release   INTEGER NOT NULL,
    -- Start of the bucket, ms since the epoch; buckets are 10 s.
    bucket_ms INTEGER NOT NULL,
    requests  INTEGER NOT NULL,
    errors    INTEGER NOT NULL,
    p50_ms    REAL,
    p99_ms    REAL,
    PRIMARY KEY (app_id, release, bucket_ms)
);
