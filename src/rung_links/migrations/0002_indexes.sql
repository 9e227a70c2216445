-- An index for every query the service runs beyond the primary and unique keys
-- (tests/links/test_schema.py EXPLAINs each query with sequential scans off).

-- GET /api/links: mine, newest first.
CREATE INDEX links_owner_newest ON links (owner_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;

-- The expire job: live links with an expiry, soonest first.
CREATE INDEX links_expiring ON links (expires_at)
    WHERE expires_at IS NOT NULL AND NOT disabled AND deleted_at IS NULL;

-- Stats: a link's clicks since midnight.
CREATE INDEX clicks_link_time ON clicks (link_id, clicked_at);

-- The rollup: every click since a day boundary.
CREATE INDEX clicks_time ON clicks (clicked_at);

-- The rollup's starting point: the latest day rolled up.
CREATE INDEX link_daily_stats_day ON link_daily_stats (day);
