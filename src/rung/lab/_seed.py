"""The lab's data: links and a month of clicks over a Zipf distribution, loaded with COPY.

    await seed(primary_url, links=20_000, clicks=600_000, zipf_s=1.1)   # a few seconds

Link `i` (1-based rank) has slug `lab-{i}` and draws clicks with weight 1/i**s, the same law
the workload's redirects follow. Clicks spread evenly over the last 30 days, so today's are
a thirtieth of them: the stats query reads the days before from `link_daily_stats` (filled
here as the rollup job would) and counts today's in `clicks`, which without its index is a
scan of every click. The tables must exist (rung_links' first migration) and be empty.
"""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

DAYS = 30
USER_EMAIL = "lab-owner@rung.invalid"
# Never matches a password: the owner of the seeded links does not log in.
_NO_PASSWORD = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

_ROLLUP = """
INSERT INTO link_daily_stats (link_id, day, clicks)
SELECT link_id, (clicked_at AT TIME ZONE 'UTC')::date, count(*)
FROM clicks WHERE clicked_at < $1 GROUP BY 1, 2
"""


def slug(rank: int) -> str:
    return f"lab-{rank}"


def cumulative_weights(links: int, s: float) -> list[float]:
    """Zipf's cumulative weights over ranks 1..links (for `random.choices`)."""
    return list(itertools.accumulate(1.0 / rank**s for rank in range(1, links + 1)))


async def seed(url: str, *, links: int, clicks: int, zipf_s: float, rng_seed: int = 1) -> None:
    """Load `links` links and `clicks` clicks into rung_links' empty tables at `url`."""
    rng = random.Random(rng_seed)
    now = datetime.now(UTC)
    month_ago = now - timedelta(days=DAYS)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    conn = await asyncpg.connect(url, statement_cache_size=0)
    try:
        async with conn.transaction():
            owner = await conn.fetchval(
                "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id",
                USER_EMAIL,
                _NO_PASSWORD,
            )
            await conn.copy_records_to_table(
                "links",
                columns=["slug", "target_url", "owner_id", "created_at"],
                records=(
                    (slug(r), f"https://example.com/{r}", owner, month_ago)
                    for r in range(1, links + 1)
                ),
            )
            first = await conn.fetchval("SELECT min(id) FROM links WHERE owner_id = $1", owner)
            ranks = rng.choices(
                range(links), cum_weights=cumulative_weights(links, zipf_s), k=clicks
            )
            span = (now - month_ago).total_seconds()
            await conn.copy_records_to_table(
                "clicks",
                columns=["id", "link_id", "clicked_at", "user_agent"],
                records=(
                    (
                        uuid.UUID(int=rng.getrandbits(128)),
                        first + rank,
                        month_ago + timedelta(seconds=rng.random() * span),
                        "rung-lab",
                    )
                    for rank in ranks
                ),
            )
            await conn.execute(_ROLLUP, midnight)
        await conn.execute("VACUUM ANALYZE users, links, clicks, link_daily_stats")
    finally:
        await conn.close()
