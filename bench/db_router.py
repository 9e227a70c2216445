"""rung.Database.fetchrow (routed to a replica) against a raw asyncpg pool on the same node.

Same run, same concurrency, rounds interleaved; prints JSON and a table with the ratio.
Also: what PgBouncer-safe mode (statement cache off) costs on a direct connection.

    python bench/db_router.py          # starts a throwaway stack (or set RUNG_DIR)
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Awaitable, Callable

import asyncpg
from _common import rate, report, stack_urls

import rung

TASKS = 16
POOL = 8
SECONDS = 3.0
ROUNDS = 3
QUERY = "SELECT id, name FROM bench_items WHERE id = $1"


async def measure(fetchrow: Callable[..., Awaitable[object]]) -> float:
    """fetchrow/s of QUERY over ids 1..1000, TASKS tasks, SECONDS seconds."""
    return await rate(lambda i: fetchrow(QUERY, i % 1000 + 1), tasks=TASKS, seconds=SECONDS)


async def main(primary: str, replica: str) -> dict[str, float]:
    setup = await asyncpg.connect(primary)
    await setup.execute(
        "CREATE TABLE IF NOT EXISTS bench_items (id int PRIMARY KEY, name text);"
        "INSERT INTO bench_items SELECT g, 'item ' || g FROM generate_series(1, 1000) g "
        "ON CONFLICT DO NOTHING"
    )
    await setup.close()
    await asyncio.sleep(0.5)  # replicated
    raw = await asyncpg.create_pool(replica, min_size=POOL, max_size=POOL)
    raw_nocache = await asyncpg.create_pool(
        replica, min_size=POOL, max_size=POOL, statement_cache_size=0
    )
    db = rung.Database(primary, [replica], min_size=POOL, max_size=POOL)
    results: dict[str, list[float]] = {"raw": [], "rung": [], "raw_cache_off": []}
    async with db:
        for _ in range(ROUNDS):
            results["raw"].append(await measure(raw.fetchrow))
            results["rung"].append(await measure(db.fetchrow))
            results["raw_cache_off"].append(await measure(raw_nocache.fetchrow))
        assert db.stats()["primary"]["queries"] == 0, "reads must have gone to the replica"
    await raw.close()
    await raw_nocache.close()
    med = {k: statistics.median(v) for k, v in results.items()}
    return {
        "raw_asyncpg_pool_per_s": round(med["raw"]),
        "rung_database_per_s": round(med["rung"]),
        "ratio_rung_vs_raw": round(med["rung"] / med["raw"], 3),
        "raw_statement_cache_off_per_s": round(med["raw_cache_off"]),
        "ratio_cache_off_vs_on": round(med["raw_cache_off"] / med["raw"], 3),
    }


if __name__ == "__main__":
    with stack_urls(replicas=1) as urls:
        out = asyncio.run(main(urls["primary_url"], urls["replica_urls"][0]))
    report(out, "fetchrow/s")
