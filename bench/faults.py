"""How long rung's calls take against hung and blocked servers, next to the bound each is
configured to keep. The tests assert the outcomes; the times are measured here.

- cache Redis SIGSTOPped: get_or_load (fails open), get, set, invalidate, invalidate_tags;
  bound: the cache's `timeout` + 0.1 s.
- PgBouncer SIGSTOPped, rung.Database through it: a write (bound: `statement_timeout`
  + 0.1 s) and a read (bound: two statement timeouts + 0.1 s: it tries a second node).
- replica1's backends blocked by a replayed ACCESS EXCLUSIVE lock while its health checks
  answer: reads (bound: two statement timeouts + 0.1 s), none may fail.
- queue Redis SIGSTOPped: put, put_many (bench/_faults_queue.py; bound: the queue's
  `timeout` + 0.1 s), and put_many of 400,000 events cut mid-way; then the same 400,000 on
  a healthy Redis, each once.
- queue Redis SIGSTOPped: session loads and saves (answered 503) and every Singleton call
  (bench/_faults_state.py; bound: their `timeout`), and a held lead lost within `lease`.

    python bench/faults.py     # starts a throwaway stack (or set RUNG_DIR)
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _faults_queue
import _faults_state
import asyncpg
from _common import frozen, report, running_stack

import rung
from rung.stack import Stack

TIMEOUT = 0.5  # seconds: the cache's timeout and the Database's statement_timeout
SLACK = 0.1
ROUNDS = 10


async def worst(call: Callable[[], Awaitable[Any]], rounds: int = ROUNDS) -> float:
    """The longest of `rounds` calls, each in a fresh context (no token), errors included."""
    longest = 0.0
    for _ in range(rounds):
        began = time.perf_counter()
        with contextlib.suppress(rung.RungError):
            await asyncio.create_task(call(), context=contextvars.Context())  # type: ignore[arg-type]
        longest = max(longest, time.perf_counter() - began)
    return longest


async def cache_hung(stack: Stack, urls: dict[str, Any]) -> dict[str, float]:
    async def loader() -> str:
        return "from-db"

    out = {}
    async with rung.Cache(urls["cache_url"], namespace="faults", timeout=TIMEOUT) as cache:
        await cache.set("k", "v")
        with frozen(stack, "cache"):
            calls: dict[str, Callable[[], Awaitable[Any]]] = {
                "get_or_load": lambda: cache.get_or_load("k", loader),
                "get": lambda: cache.get("k"),
                "set": lambda: cache.set("k", "x"),
                "invalidate": lambda: cache.invalidate("k"),
                "invalidate_tags": lambda: cache.invalidate_tags("t"),
            }
            for name, call in calls.items():
                out[f"cache_hung.{name}"] = await worst(call, rounds=3)
    return out


async def pgbouncer_hung(stack: Stack, urls: dict[str, Any]) -> dict[str, float]:
    async with rung.Database(
        urls["pooled_primary_url"], urls["pooled_replica_urls"], max_lag=60.0,
        statement_timeout=TIMEOUT, acquire_timeout=TIMEOUT, min_size=2,
    ) as db:  # fmt: skip
        await db.fetchval("SELECT 1")
        with frozen(stack, "pgbouncer"):
            write = await worst(lambda: db.execute("SELECT 1", primary=True), rounds=3)
            read = await worst(lambda: db.fetchval("SELECT 1"), rounds=3)
    return {"pgbouncer_hung.write": write, "pgbouncer_hung.read": read}


async def replica_blocked(stack: Stack, urls: dict[str, Any]) -> dict[str, float]:
    primary = await asyncpg.connect(urls["primary_url"])
    replica1 = await asyncpg.connect(urls["replica_urls"][0])
    replica2 = await asyncpg.connect(urls["replica_urls"][1])
    await primary.execute("DROP TABLE IF EXISTS faults_t; CREATE TABLE faults_t (k int)")
    await primary.execute("INSERT INTO faults_t VALUES (1)")
    await asyncio.sleep(0.5)  # replicated
    await replica2.execute("SELECT pg_wal_replay_pause()")
    failures = 0
    try:
        async with primary.transaction():
            await primary.execute("LOCK TABLE faults_t IN ACCESS EXCLUSIVE MODE")
            flush = await asyncpg.connect(urls["primary_url"])
            await flush.execute("SELECT txid_current()")  # a commit streams the lock record
            await flush.close()
            held = "SELECT count(*) FROM pg_locks WHERE relation = 'faults_t'::regclass"
            while not await replica1.fetchval(held):  # noqa: ASYNC110 (a remote condition)
                await asyncio.sleep(0.01)
            async with rung.Database(
                urls["primary_url"], urls["replica_urls"], max_lag=60.0, statement_timeout=TIMEOUT
            ) as db:

                async def read() -> None:
                    nonlocal failures
                    if await db.fetchval("SELECT k FROM faults_t") != 1:
                        failures += 1

                longest = await worst(read, rounds=40)
    finally:
        await replica2.execute("SELECT pg_wal_replay_resume()")
        for conn in (primary, replica1, replica2):
            await conn.close()
    return {"replica_blocked.read": longest, "replica_blocked.failed_reads": failures}


def bounds() -> dict[str, float]:
    one, two = TIMEOUT + SLACK, 2 * TIMEOUT + SLACK
    return {"cache_hung": one, "pgbouncer_hung.write": one, "pgbouncer_hung.read": two,
            "replica_blocked.read": two}  # fmt: skip


async def main(stack: Stack) -> dict[str, Any]:
    record = stack.running()
    assert record is not None
    urls = record.urls()
    measured: dict[str, float] = {}
    for scenario in (cache_hung, pgbouncer_hung, replica_blocked):
        measured |= await scenario(stack, urls)
    out: dict[str, Any] = {}
    for name, value in measured.items():  # the database's and the cache's
        if name.endswith("failed_reads"):
            out[name] = value
            continue
        bound = next(b for prefix, b in bounds().items() if name.startswith(prefix))
        out[f"{name}_worst_s"] = round(value, 3)
        out[f"{name}_bound_s"] = bound
        out[f"{name}_within"] = value <= bound
    out |= {f"queue.{k}": v for k, v in (await _faults_queue.main(stack)).items()}
    out |= await _faults_state.main(stack, urls["queue_url"])
    return out


if __name__ == "__main__":
    with running_stack(replicas=2) as stack:
        report(asyncio.run(main(stack)), "value")
