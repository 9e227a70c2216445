"""What a replica whose replay is stuck costs a read that carries a consistency token.

With the only replica's replay paused, each round writes a row (the context's token moves
past the replica) and reads it back. rung sees the replica stall (behind at two monitor
polls in a row, nothing replayed between) and sends such reads to the primary at once
instead of waiting `causal_wait` for a replica that cannot catch up. The baseline is the
same write and read through a Database with no replica at all, interleaved in the same run;
the difference of the medians is what the stuck replica adds to a read.

    python bench/db_stuck_replica.py     # starts a throwaway stack (or set RUNG_DIR)
"""

from __future__ import annotations

import asyncio
import statistics
import time

import asyncpg
from _common import report, stack_urls

import rung

READS = 2000


async def write_then_read(db: rung.Database, k: int) -> tuple[float, bool]:
    """(seconds the read took, whether it saw the write)."""
    await db.execute("INSERT INTO bench_stuck VALUES ($1)", k)
    began = time.perf_counter()
    seen = await db.fetchval("SELECT k FROM bench_stuck WHERE k = $1", k)
    return time.perf_counter() - began, seen == k


async def main(primary: str, replica: str) -> dict[str, float]:
    setup = await asyncpg.connect(primary)
    await setup.execute("DROP TABLE IF EXISTS bench_stuck; CREATE TABLE bench_stuck (k int)")
    await setup.close()
    control = await asyncpg.connect(replica)
    routed = rung.Database(primary, [replica], max_lag=3600.0)
    direct = rung.Database(primary)
    async with routed, direct:
        await asyncio.sleep(0.5)  # the table replicated
        paused_at = time.monotonic()
        await control.execute("SELECT pg_wal_replay_pause()")
        await routed.execute("INSERT INTO bench_stuck VALUES (-1)")
        while not routed.stats()["replica1"]["replay_stalled"]:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        detected_ms = (time.monotonic() - paused_at) * 1000
        waits_before = routed.stats()["replica1"]["causal_waits"]
        stuck: list[float] = []
        base: list[float] = []
        stale = 0
        for k in range(READS):
            took, seen = await write_then_read(routed, k)
            stuck.append(took)
            stale += not seen
            base.append((await write_then_read(direct, READS + k))[0])
        waited = routed.stats()["replica1"]["causal_waits"] - waits_before
        await control.execute("SELECT pg_wal_replay_resume()")
    await control.close()
    p50_stuck, p50_base = statistics.median(stuck), statistics.median(base)
    return {
        "reads": READS,
        "stale_reads": stale,
        "reads_that_waited_for_the_stuck_replica": waited,
        "detected_after_pause_ms": round(detected_ms, 1),
        "p50_read_stuck_replica_ms": round(p50_stuck * 1000, 3),
        "p50_read_primary_only_ms": round(p50_base * 1000, 3),
        "p50_added_ms": round((p50_stuck - p50_base) * 1000, 3),
        "p99_read_stuck_replica_ms": round(statistics.quantiles(stuck, n=100)[98] * 1000, 3),
        "causal_wait_ms": routed.causal_wait * 1000,
    }


if __name__ == "__main__":
    with stack_urls(replicas=1) as urls:
        report(asyncio.run(main(urls["primary_url"], urls["replica_urls"][0])), "value")
