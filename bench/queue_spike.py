"""A write spike at 10x what the drain may take: the queue absorbs it, the database sees
the drain's steady rate, and nothing is lost.

A drain capped at 500 rows/s; 8 producer tasks put single events at 5,000/s in all, for
5 s. Prints put latency (p50/p99/max), the depth over time, how long the backlog took to
drain, and whether the table holds every event exactly once.

    python bench/queue_spike.py         # starts a throwaway stack (or set RUNG_DIR)
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from typing import Any

from _common import report, stack_urls

import rung

DRAIN_RATE = 500.0
SPIKE_RATE = 10 * DRAIN_RATE
SPIKE_SECONDS = 5.0
PRODUCERS = 8


async def main(urls: dict[str, Any]) -> dict[str, Any]:
    table = f"spike_{secrets.token_hex(3)}"
    db = rung.Database(urls["primary_url"])
    queue = rung.Queue(urls["queue_url"], stream=table)
    async with db, queue:
        await db.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY, n int NOT NULL)")
        sink = rung.TableSink(db, table=table, columns=("id", "n"), key="id")
        drain = rung.Drain(queue, sink, max_rate=DRAIN_RATE)
        draining = asyncio.create_task(drain.run())
        latencies: list[float] = []
        depths: list[tuple[float, int]] = []
        began = time.monotonic()

        async def produce(p: int) -> int:
            sent = 0
            while (elapsed := time.monotonic() - began) < SPIKE_SECONDS:
                t = time.perf_counter()
                await queue.put({"n": p * 1_000_000 + sent})
                latencies.append(time.perf_counter() - t)
                sent += 1
                await asyncio.sleep(max(0.0, sent * PRODUCERS / SPIKE_RATE - elapsed))
            return sent

        async def watch() -> None:
            while True:
                stats = await queue.stats()
                depths.append((time.monotonic() - began, stats["depth"]))
                if time.monotonic() - began > SPIKE_SECONDS and stats["depth"] == 0:
                    return
                await asyncio.sleep(0.5)

        watching = asyncio.create_task(watch())
        sent = sum(await asyncio.gather(*(produce(p) for p in range(PRODUCERS))))
        await asyncio.wait_for(watching, 600)
        drained_at = time.monotonic() - began
        drain.stop()
        await draining
        written = await db.fetchval(f"SELECT count(DISTINCT id) FROM {table}")
        await db.execute(f"DROP TABLE {table}")
    q = statistics.quantiles(latencies, n=100)
    print("depth over time (s, events):", [(round(t, 1), d) for t, d in depths[::4]])
    return {
        "events_sent": sent,
        "producer_rate_per_s": round(sent / SPIKE_SECONDS),
        "drain_max_rate_per_s": DRAIN_RATE,
        "put_p50_ms": round(q[49] * 1000, 2),
        "put_p99_ms": round(q[98] * 1000, 2),
        "put_max_ms": round(max(latencies) * 1000, 2),
        "max_depth": max(d for _, d in depths),
        "drained_after_s": round(drained_at, 1),
        "rows_written": written,
        "lost": sent - written,
    }


if __name__ == "__main__":
    with stack_urls(replicas=1) as urls:
        result = asyncio.run(main(urls))
    report(result, "value")
