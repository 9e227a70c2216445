"""`GET /api/links/{slug}/stats`: clicks per day, cached for `stats_ttl` seconds.

    {"slug": "docs", "clicks": 12, "daily": [{"day": "2026-11-25", "clicks": 5}, ...]}

Tolerably stale by design: days before today come from `link_daily_stats` (the rollup
job's), today from `clicks` itself; the answer is cached with a TTL and no invalidation.
Whether the link exists is not stale: that comes from the link's own cache entry, which
writes invalidate, so a deleted link's stats are 404 at once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from fastapi import APIRouter, HTTPException

from rung_links import links
from rung_links.models import SLUG, Stats, errors
from rung_links.services import Services

DAILY = """
SELECT day, clicks FROM link_daily_stats WHERE link_id = $1 AND day < $2
UNION ALL
SELECT $2, count(*) FROM clicks WHERE link_id = $1 AND clicked_at >= $3 HAVING count(*) > 0
ORDER BY day
"""


def today() -> date:
    return datetime.now(UTC).date()


async def load(services: Services, link_id: int, slug: str) -> dict[str, Any]:
    """The stats of link `link_id` from the database (a replica)."""
    day = today()
    midnight = datetime.combine(day, time(), UTC)
    rows = await services.db.fetch(DAILY, link_id, day, midnight)
    daily = [{"day": row["day"].isoformat(), "clicks": row["clicks"]} for row in rows]
    return {"slug": slug, "clicks": sum(d["clicks"] for d in daily), "daily": daily}


def routes(services: Services) -> APIRouter:
    router = APIRouter(prefix="/api/links", tags=["stats"])

    @router.get("/{slug}/stats", responses=errors(404))
    async def link_stats(slug: str) -> Stats:
        """Clicks per day (UTC) and in all; at most `stats_ttl` seconds stale."""
        record = await links.lookup(services, slug) if SLUG.fullmatch(slug) else None
        if record is None or record["deleted"]:
            raise HTTPException(404, "no such link")
        link_id = record["id"]
        cached = await services.cached(
            f"stats:{link_id}",
            lambda: load(services, link_id, slug),
            ttl=services.settings.stats_ttl,
        )
        return Stats.model_validate(cached)

    return router
