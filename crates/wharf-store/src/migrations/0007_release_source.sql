-- Where a release's source came from, as people read it: `upload
-- sha256:<hex>` (shipped by a client), `git <url> <commit>` (fetched by
-- the server) or `dir <path>` (a directory on the server's machine).
-- NULL for releases made before this column existed.
ALTER TABLE releases ADD COLUMN source TEXT;
