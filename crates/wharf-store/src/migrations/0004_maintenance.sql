-- Maintenance mode per app: NULL is off; any text (empty for the default
-- page) is on, with that message. Kept across server restarts.
ALTER TABLE apps ADD COLUMN maintenance TEXT;
