"""The periodic jobs, each run once per tick across every instance (rung.Singleton).

    jobs = Jobs(services)
    jobs.schedule(rung.Singleton(queue_url, name="links"))
    await jobs.expire_links(fencing_token)      # or by hand, with a token from leadership()

- `expire_links` marks links past `expires_at` disabled and invalidates their cache entries
  (the redirect already answers 410 at the expiry: it checks the clock itself).
- `roll_up` recomputes `link_daily_stats` from `clicks` for every day since the day before
  the latest one rolled up: an upsert of counts, not of increments, so running it twice,
  or for a day already done, gives the same rows.

Each run first records its fencing token in `job_fences` inside its own transaction, and
does nothing when a higher one is there: a holder that was paused past its lease and wakes
up after another instance ran the job cannot write behind it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta

import rung
from rung_links import links
from rung_links.services import Services

log = logging.getLogger("rung_links.jobs")

FENCE = """
INSERT INTO job_fences (job, token) VALUES ($1, $2)
ON CONFLICT (job) DO UPDATE SET token = EXCLUDED.token WHERE job_fences.token <= EXCLUDED.token
RETURNING token
"""
EXPIRE = """
UPDATE links SET disabled = true
WHERE id IN (
    SELECT id FROM links
    WHERE expires_at <= now() AND expires_at IS NOT NULL AND NOT disabled AND deleted_at IS NULL
    ORDER BY expires_at LIMIT $1
)
RETURNING slug
"""
LAST_ROLLED = "SELECT max(day) FROM link_daily_stats"
FIRST_CLICK = "SELECT min(clicked_at) FROM clicks"
ROLL_UP = """
INSERT INTO link_daily_stats (link_id, day, clicks)
SELECT link_id, (clicked_at AT TIME ZONE 'UTC')::date, count(*)
FROM clicks WHERE clicked_at >= $1
GROUP BY 1, 2
ON CONFLICT (link_id, day) DO UPDATE SET clicks = EXCLUDED.clicks
WHERE link_daily_stats.clicks IS DISTINCT FROM EXCLUDED.clicks
"""

EXPIRE_BATCH = 1000  # links per transaction


class Jobs:
    """The service's singleton jobs on `services` (see the module docstring)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def schedule(self, singleton: rung.Singleton) -> None:
        settings = self.services.settings
        singleton.every(settings.expire_every)(self.expire_links)
        singleton.every(settings.rollup_every)(self.roll_up)

    async def expire_links(self, fencing_token: int) -> int:
        """Disable the links past their expiry; how many."""
        db, cache = self.services.db, self.services.cache
        expired = 0
        while True:
            async with db.transaction():
                if not await db.fetchval(FENCE, "expire_links", fencing_token):
                    log.warning("expire_links: fencing token %d is stale, skipped", fencing_token)
                    return expired
                slugs = [row["slug"] for row in await db.fetch(EXPIRE, EXPIRE_BATCH)]
                for slug in slugs:
                    db.after_commit(cache.invalidate, links.key(slug))
            expired += len(slugs)
            if len(slugs) < EXPIRE_BATCH:
                return expired

    async def roll_up(self, fencing_token: int) -> int:
        """Recompute the daily counts since the day before the last one rolled up (all
        days, the first time); how many (link, day) rows changed."""
        db = self.services.db
        async with db.transaction():
            if not await db.fetchval(FENCE, "roll_up", fencing_token):
                log.warning("roll_up: fencing token %d is stale, skipped", fencing_token)
                return 0
            last = await db.fetchval(LAST_ROLLED)
            if last is not None:  # (a click from a clock ahead of ours cannot skip days)
                start = min(last, datetime.now(UTC).date()) - timedelta(days=1)
                since = datetime.combine(start, time(), UTC)
            else:
                first = await db.fetchval(FIRST_CLICK)
                if first is None:
                    return 0
                since = datetime.combine(first.astimezone(UTC).date(), time(), UTC)
            status = await db.execute(ROLL_UP, since)
        return int(status.split()[-1])
