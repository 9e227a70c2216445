"""rung.Queue against a hung queue Redis, and a big put_many: the worst latency of each call
against its configured timeout (the bound the tests do not assert).

- frozen put: the queue Redis is SIGSTOPped; `put` with `timeout=1.0`, one at a time (new
  connections) and 16 at once (pooled connections): each must raise QueueUnavailable within
  the timeout plus 100 ms;
- frozen put_many: the same for put_many(1,000) and for a put_many(400,000) cut mid-way;
- big put_many: put_many(400,000) against a 1 s timeout on a healthy Redis: events/s, the
  slowest single chunk call, and duplicates (stream length minus distinct ids: must be 0).

    python bench/faults_queue.py      # starts a throwaway stack (or set RUNG_DIR)
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from _common import frozen

import rung
from rung.stack import Stack

TIMEOUT = 1.0
SLACK = 0.1  # the acceptance bound: timeout + 100 ms
BIG = 400_000


async def timed(op: Callable[[], Awaitable[object]]) -> tuple[float, str]:
    """How long `op()` took, and how it ended ('ok' or the exception's class)."""
    began = time.perf_counter()
    try:
        await op()
        outcome = "ok"
    except Exception as e:
        outcome = type(e).__name__
    return time.perf_counter() - began, outcome


async def frozen_puts(s: Stack, url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with rung.Queue(url, stream=f"bench-frozen-{secrets.token_hex(3)}",
                          timeout=TIMEOUT) as queue:  # fmt: skip
        await asyncio.gather(*(queue.put({"n": i}) for i in range(16)))  # 16 pooled connections
        for _ in range(3):
            with frozen(s, "queue"):
                one = [await timed(lambda: queue.put({"n": 1})) for _ in range(5)]
                many = await asyncio.gather(*(timed(lambda: queue.put({"n": 2}))
                                              for _ in range(16)))  # fmt: skip
                batch = [await timed(lambda: queue.put_many([{"n": 3}] * 1000))]
            for name, results in (("put_1_at_a_time", one), ("put_16_at_once", many),
                                  ("put_many_1000", batch)):  # fmt: skip
                worst = max(t for t, _ in results)
                out[f"frozen_{name}_worst_s"] = max(out.get(f"frozen_{name}_worst_s", 0.0), worst)
                out.setdefault(f"frozen_{name}_outcomes", set()).update(o for _, o in results)
            await asyncio.gather(*(queue.put({"n": i}) for i in range(16)))  # pool warm again
    for key in [k for k in out if k.endswith("_outcomes")]:
        out[key] = ",".join(sorted(out[key]))
    return out


async def cut_put_many(s: Stack, url: str) -> dict[str, Any]:
    """put_many(400,000) frozen mid-way: the time from the freeze to the exception."""
    stream = f"bench-cut-{secrets.token_hex(3)}"
    async with rung.Queue(url, stream=stream, timeout=TIMEOUT, max_depth=10 * BIG) as queue, \
               aioredis.Redis.from_url(url) as r:  # fmt: skip
        putting = asyncio.create_task(queue.put_many([{"n": i} for i in range(BIG)]))
        while await r.xlen(stream) < 10_000:  # noqa: ASYNC110 (the state is in Redis)
            await asyncio.sleep(0.005)
        with frozen(s, "queue"):
            began = time.perf_counter()
            try:
                await putting
                outcome = "ok"
            except rung.QueueError as e:
                outcome = type(e).__name__
            took = time.perf_counter() - began
        await r.delete(stream)
    return {"frozen_put_many_400000_cut_s": took, "frozen_put_many_400000_cut_outcome": outcome}


async def big_put_many(url: str) -> dict[str, Any]:
    stream = f"bench-big-{secrets.token_hex(3)}"
    chunk_calls: list[float] = []
    async with rung.Queue(url, stream=stream, timeout=TIMEOUT, max_depth=10 * BIG) as queue:
        broker_put = queue.broker.put

        async def timed_put(*args: Any, **kwargs: Any) -> int:
            began = time.perf_counter()
            try:
                return await broker_put(*args, **kwargs)
            finally:
                chunk_calls.append(time.perf_counter() - began)

        queue.broker.put = timed_put  # type: ignore[method-assign]
        began = time.perf_counter()
        await queue.put_many([{"n": i} for i in range(BIG)])
        took = time.perf_counter() - began
    async with aioredis.Redis.from_url(url) as r:
        length = await r.xlen(stream)
        ids: set[str] = set()
        start = "-"
        while page := await r.xrange(stream, min=start, count=10_000):
            ids.update(orjson.loads(f[b"e"])["id"] for _, f in page)
            start = "(" + page[-1][0].decode()
        await r.delete(stream)
    return {
        "big_put_many_400000_s": took,
        "big_put_many_events_per_s": round(BIG / took),
        "big_put_many_chunk_calls": len(chunk_calls),
        "big_put_many_slowest_chunk_s": max(chunk_calls),
        "big_put_many_duplicates": length - len(ids),
    }


async def main(s: Stack) -> dict[str, Any]:
    record = s.running()
    assert record is not None, "no running stack"
    url = record.urls()["queue_url"]
    out: dict[str, Any] = {"timeout_s": TIMEOUT, "bound_s": TIMEOUT + SLACK}
    out.update(await frozen_puts(s, url))
    out.update(await cut_put_many(s, url))
    out.update(await big_put_many(url))
    worst = max(v for k, v in out.items() if k.startswith("frozen_") and k.endswith("_s"))
    out["frozen_worst_s"] = worst
    out["frozen_worst_within_bound"] = "yes" if worst <= TIMEOUT + SLACK else "NO"
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}
