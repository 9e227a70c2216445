"""Cache-aside with invalidation after commit: the replica has stopped replaying, yet the
refill in another instance reads the new row, because the invalidation carried the
writer's consistency token.

    rung up --replicas 1 && python examples/cache_aside.py
"""

import asyncio
import contextvars

import rung
from rung.stack import Stack, default_dir, psql
from rung.testing import wait_until


async def main() -> None:
    stack = Stack(default_dir()).running()
    assert stack is not None, "start a stack first: rung up"
    urls = stack.urls()
    replica_port = next(c.port for c in stack.components if c.name == "replica1")

    db = rung.Database(urls["primary_url"], urls["replica_urls"][:1], max_lag=60.0)
    cache = rung.Cache(urls["cache_url"], namespace="example", db=db)
    async with db, cache:

        @cache.cached(key="link:{slug}", ttl=60.0)
        async def target_of(slug: str) -> str | None:
            return await db.fetchval("SELECT target FROM ca_links WHERE slug = $1", slug)

        await db.execute("CREATE TABLE IF NOT EXISTS ca_links (slug text PRIMARY KEY, target text)")
        await db.execute(
            "INSERT INTO ca_links VALUES ('abc', 'https://old.example') "
            "ON CONFLICT (slug) DO UPDATE SET target = excluded.target"
        )
        await cache.invalidate("link:abc")
        caught_up = f"SELECT pg_last_wal_replay_lsn() >= '{db.token()}'"
        wait_until(lambda: psql(replica_port, caught_up) == "t")

        print("first call: ", await target_of("abc"))  # a miss: loaded from the replica
        print("second call:", await target_of("abc"))  # a hit
        psql(replica_port, "SELECT pg_wal_replay_pause()")  # the replica goes stale
        try:
            async with db.transaction():
                await db.execute("UPDATE ca_links SET target = 'https://new.example'")
                db.after_commit(cache.invalidate, "link:abc")  # runs after the commit

            async def another_instance() -> None:  # no token of its own
                print("stale replica:", await db.fetchval("SELECT target FROM ca_links"))
                print("refill:     ", await target_of("abc"))

            await asyncio.create_task(another_instance(), context=contextvars.Context())
        finally:
            psql(replica_port, "SELECT pg_wal_replay_resume()")
        stats = cache.stats()
        print(f"hits={stats['hits']} misses={stats['misses']} loads={stats['loads']}")


if __name__ == "__main__":
    asyncio.run(main())
