"""rung.Queue / rung.Drain against raw redis-py, raw asyncpg and saq, in one run, on the
same Redis and PostgreSQL.

- put: `queue.put(event)` vs raw `XADD stream * e <orjson>` vs saq `enqueue`, each call
  awaited in turn (same pipelining: none), 1 task and 16 tasks;
- drain, medians of ROUNDS rounds: rows/s into PostgreSQL of `rung.Drain` + `TableSink`
  (COPY into the table, XACK after commit), with batches of 1,000 and of 5,000, vs raw
  asyncpg `copy_records_to_table` of the same rows in batches of 1,000, one transaction per
  batch, and vs one bulk `copy_records_to_table` of all of them; and jobs/s of a saq worker
  processing no-op jobs (defaults, concurrency 10).

    python bench/queue_vs_peers.py      # starts a throwaway stack (or set RUNG_DIR)
"""

from __future__ import annotations

import asyncio
import datetime
import secrets
import statistics
import time
import uuid
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from _common import rate, report, stack_urls
from saq import Queue as SaqQueue
from saq import Worker

import rung

SECONDS = 2.0
ROUNDS = 3
ROWS = 100_000
SAQ_JOBS = 10_000
BATCH = 1000


def event(i: int) -> dict[str, Any]:
    return {"link_id": i % 1000, "clicked_at": "2026-11-26T10:00:00+00:00", "referrer": "x"}


async def puts(queue_url: str, run: str) -> dict[str, float]:
    raw = aioredis.Redis.from_url(queue_url)
    queue = rung.Queue(queue_url, stream=f"bench-put-{run}")
    saq = SaqQueue.from_url(queue_url, name=f"bench-put-{run}")
    await saq.connect()

    async def raw_xadd(i: int) -> object:
        return await raw.xadd(f"bench-raw-{run}", {"e": orjson.dumps({**event(i), "id": i})})

    variants = {
        "raw_xadd": raw_xadd,
        "rung_put": lambda i: queue.put(event(i)),
        "saq_enqueue": lambda i: saq.enqueue("noop", **event(i)),
    }
    results: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        for tasks in (1, 16):
            for name, op in variants.items():
                measured = await rate(op, tasks=tasks, seconds=SECONDS)
                results.setdefault(f"put_{tasks}task_{name}", []).append(measured)
    await raw.delete(f"bench-raw-{run}", f"bench-put-{run}")
    await raw.aclose()
    await queue.close()
    await saq.disconnect()
    return {k: statistics.median(v) for k, v in results.items()}


async def drains(primary_url: str, queue_url: str, run: str) -> dict[str, float]:
    """Medians over ROUNDS rounds; each round drains, then COPYs, the same ROWS rows."""
    columns = ("id", "link_id", "clicked_at", "referrer")
    setup = await asyncpg.connect(primary_url)
    for t in ("bench_rung", "bench_raw"):
        await setup.execute(
            f"DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (id uuid PRIMARY KEY, "
            "link_id int NOT NULL, clicked_at timestamptz NOT NULL, referrer text)"
        )
    results: dict[str, list[float]] = {}
    for n in range(ROUNDS):
        # rung: put everything, then time the drain from start to empty
        for size in (BATCH, 5 * BATCH):
            stream = f"bench-drain-{run}-{n}-{size}"
            async with rung.Queue(queue_url, stream=stream, max_depth=10 * ROWS) as queue:
                for start in range(0, ROWS, BATCH):
                    await queue.put_many([event(i) for i in range(start, start + BATCH)])
                db = rung.Database(primary_url, min_size=1, max_size=2)
                async with db:
                    await db.execute("TRUNCATE bench_rung")
                    sink = rung.TableSink(db, table="bench_rung", columns=columns, key="id")
                    drain = rung.Drain(queue, sink, batch_size=size)
                    began = time.monotonic()
                    task = asyncio.create_task(drain.run())
                    while (await queue.stats())["depth"]:  # noqa: ASYNC110 (the state is in Redis)
                        await asyncio.sleep(0.01)
                    elapsed = time.monotonic() - began
                    drain.stop()
                    await task
                    assert await db.fetchval("SELECT count(*) FROM bench_rung") == ROWS
            results.setdefault(f"drain_rung_batch{size}_rows_per_s", []).append(ROWS / elapsed)

        # raw: the same rows, COPY per batch, one transaction each; then all in one COPY
        rows = [(uuid.uuid4(), i % 1000, _at(), "x") for i in range(ROWS)]
        await setup.execute("TRUNCATE bench_raw")
        began = time.monotonic()
        for start in range(0, ROWS, BATCH):
            async with setup.transaction():
                await setup.copy_records_to_table("bench_raw", records=rows[start : start + BATCH],
                                                  columns=list(columns))  # fmt: skip
        results.setdefault("drain_raw_copy_rows_per_s", []).append(
            ROWS / (time.monotonic() - began)
        )
        await setup.execute("TRUNCATE bench_raw")
        began = time.monotonic()
        await setup.copy_records_to_table("bench_raw", records=rows, columns=list(columns))
        results.setdefault("drain_bulk_copy_rows_per_s", []).append(
            ROWS / (time.monotonic() - began)
        )
        del rows  # not the drain's garbage: the next round's collector need not walk it
    await setup.execute("DROP TABLE bench_rung; DROP TABLE bench_raw")
    await setup.close()
    out = {k: statistics.median(v) for k, v in results.items()}

    # saq: no-op jobs through its worker
    saq = SaqQueue.from_url(queue_url, name=f"bench-saq-{run}")
    await saq.connect()
    for i in range(SAQ_JOBS):
        await saq.enqueue("noop", n=i)
    done = asyncio.Event()
    count = 0

    async def noop(ctx: dict[str, Any], **_: Any) -> None:
        nonlocal count
        count += 1
        if count == SAQ_JOBS:
            done.set()

    worker = Worker(saq, functions=[("noop", noop)], concurrency=10)
    began = time.monotonic()
    task = asyncio.create_task(worker.start())
    await asyncio.wait_for(done.wait(), 120)
    out["saq_noop_jobs_per_s"] = SAQ_JOBS / (time.monotonic() - began)
    await worker.stop()
    task.cancel()
    await saq.disconnect()
    return out


def _at() -> datetime.datetime:
    return datetime.datetime(2026, 11, 26, 10, tzinfo=datetime.UTC)


async def main(urls: dict[str, Any]) -> dict[str, float]:
    run = secrets.token_hex(3)
    med = await puts(urls["queue_url"], run)
    med.update(await drains(urls["primary_url"], urls["queue_url"], run))
    out = {k: round(v) for k, v in med.items()}
    for tasks in (1, 16):
        rung_put = med[f"put_{tasks}task_rung_put"]
        out[f"put_{tasks}task_rung_vs_raw_xadd"] = round(
            rung_put / med[f"put_{tasks}task_raw_xadd"], 3
        )
        out[f"put_{tasks}task_rung_vs_saq"] = round(
            rung_put / med[f"put_{tasks}task_saq_enqueue"], 3
        )
    drained = med[f"drain_rung_batch{BATCH}_rows_per_s"]
    out["drain_rung_vs_raw_copy"] = round(drained / med["drain_raw_copy_rows_per_s"], 3)
    out["drain_rung_vs_saq_noop"] = round(drained / med["saq_noop_jobs_per_s"], 3)
    bigger = med[f"drain_rung_batch{5 * BATCH}_rows_per_s"]
    out["drain_rung_batch5000_vs_bulk_copy"] = round(bigger / med["drain_bulk_copy_rows_per_s"], 3)
    return out


if __name__ == "__main__":
    with stack_urls(replicas=1) as urls:
        result = asyncio.run(main(urls))
    report(result, "per s | ratio")
