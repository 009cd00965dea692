-- What a release was made from: a hash of its source tree (the files git
-- would commit, or all of them outside git) and nothing else, so a restart
-- of `wharf up` can tell whether the working tree still is the serving
-- release's source. NULL for releases made before this column existed.
ALTER TABLE releases ADD COLUMN source_hash TEXT;
