"""rung.Database.fetchrow (routed to a replica) against a raw asyncpg pool on the same node.

Same run, rounds interleaved; prints JSON (every round) and a table with the ratios:
- 16 tasks over a pool of 8, against the raw pool as it comes (nothing bounded) and bounded
  as rung bounds a read (the acquire and the statement each with a timeout), and what
  PgBouncer-safe mode (statement cache off) costs on a direct connection;
- contention: 64 tasks over a pool of 8, so most acquires wait in line for a connection
  (rung's waiters, `rung/db/_waiters.py`, against asyncpg's own queue).

    python bench/db_router.py                 # starts a throwaway stack (or set RUNG_DIR)
    python bench/db_router.py --contention    # only the contention part
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import asyncpg
from _common import rate, report, seed_items, stack_urls

import rung

TASKS = 16
CONTENDING = 64
POOL = 8
SECONDS = 3.0
ROUNDS = 3
CONTENTION_ROUNDS = 5
QUERY = "SELECT id, name FROM bench_items WHERE id = $1"
ACQUIRE_TIMEOUT = 5.0  # rung.Database's default


class Reader(Protocol):
    async def fetchrow(self, query: str, *args: Any) -> object: ...


async def measure(fetchrow: Callable[..., Awaitable[object]], tasks: int = TASKS) -> float:
    """fetchrow/s of QUERY over ids 1..1000, `tasks` tasks, SECONDS seconds."""
    return await rate(lambda i: fetchrow(QUERY, i % 1000 + 1), tasks=tasks, seconds=SECONDS)


def rounds(values: list[float]) -> str:
    return " / ".join(str(round(v)) for v in values)


async def routed(primary: str, replica: str) -> dict[str, Any]:
    raw = await asyncpg.create_pool(replica, min_size=POOL, max_size=POOL)
    raw_nocache = await asyncpg.create_pool(
        replica, min_size=POOL, max_size=POOL, statement_cache_size=0
    )
    db = rung.Database(primary, [replica], min_size=POOL, max_size=POOL)

    async def bounded(query: str, *args: Any) -> object:
        """The raw pool bounded as rung bounds each read: the acquire and the statement."""
        async with raw.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
            return await conn.fetchrow(query, *args, timeout=db.statement_timeout)

    results: dict[str, list[float]] = {"raw": [], "raw_bounded": [], "rung": [],
                                       "raw_cache_off": []}  # fmt: skip
    async with db:
        for _ in range(ROUNDS):
            results["raw"].append(await measure(raw.fetchrow))
            results["raw_bounded"].append(await measure(bounded))
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
        "raw_bounded_per_s": round(med["raw_bounded"]),
        "ratio_rung_vs_raw_bounded": round(med["rung"] / med["raw_bounded"], 3),
        "raw_statement_cache_off_per_s": round(med["raw_cache_off"]),
        "ratio_cache_off_vs_on": round(med["raw_cache_off"] / med["raw"], 3),
        "rounds_raw": rounds(results["raw"]),
        "rounds_raw_bounded": rounds(results["raw_bounded"]),
        "rounds_rung": rounds(results["rung"]),
        "rounds_raw_cache_off": rounds(results["raw_cache_off"]),
    }


async def contention(primary: str, replica: str) -> dict[str, Any]:
    """CONTENDING tasks over POOL connections, CONTENTION_ROUNDS rounds; within a round the
    variants take turns in a rotating order."""
    raw = await asyncpg.create_pool(replica, min_size=POOL, max_size=POOL)
    dbs = {"rung": rung.Database(primary, [replica], min_size=POOL, max_size=POOL)}
    for db in dbs.values():
        await db.open()
    readers: dict[str, Reader] = {"raw": raw, **dbs}
    results: dict[str, list[float]] = {name: [] for name in readers}
    names = list(readers)
    for r in range(CONTENTION_ROUNDS):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            results[name].append(await measure(readers[name].fetchrow, CONTENDING))
    for db in dbs.values():
        assert db.stats()["primary"]["queries"] == 0, "reads must have gone to the replica"
        await db.close()
    await raw.close()
    med = {k: statistics.median(v) for k, v in results.items()}
    out: dict[str, Any] = {"contention_raw_asyncpg_pool_per_s": round(med["raw"])}
    for name in dbs:
        out[f"contention_{name}_per_s"] = round(med[name])
        out[f"contention_ratio_{name}_vs_raw"] = round(med[name] / med["raw"], 3)
    out.update((f"contention_rounds_{name}", rounds(v)) for name, v in results.items())
    return out


async def main(primary: str, replica: str, *, only_contention: bool = False) -> dict[str, Any]:
    await seed_items(primary)
    out = {} if only_contention else await routed(primary, replica)
    return out | await contention(primary, replica)


if __name__ == "__main__":
    with stack_urls(replicas=1) as urls:
        primary, replica = urls["primary_url"], urls["replica_urls"][0]
        out = asyncio.run(main(primary, replica, only_contention="--contention" in sys.argv))
    report(out, "fetchrow/s")
