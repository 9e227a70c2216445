"""rung.Cache against cashews and raw redis-py, in one run, on the same Redis.

Hit path: 100 pre-warmed keys, one task looping over them (as anchor-numbers §8 did), and
16 concurrent tasks. Miss path: every call a new key. Variants, rounds interleaved:
- raw: redis-py GET + orjson.loads (on a miss: + SET with EX), the floor any cache pays;
- cashews: `@cache(ttl="10m", key=...)` (its defaults: pickle, in-process single-flight);
- rung: `@cache.cached(key=...)` and `cache.get_or_load` (lease-guarded, tags off).

    python bench/cache_vs_peers.py      # starts a throwaway stack (or set RUNG_DIR)
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from _common import rate, report, stack_urls
from cashews import Cache as Cashews

import rung

SECONDS = 2.0
ROUNDS = 3
KEYS = 100
ROW = {"slug": "abc123", "target_url": "https://example.com/some/long/path", "disabled": False}


async def load_row() -> dict[str, Any]:
    return ROW


async def main(url: str) -> dict[str, float]:
    run = secrets.token_hex(3)
    raw = aioredis.Redis.from_url(url)
    cashews = Cashews()
    cashews.setup(url)
    cache = rung.Cache(url, namespace=f"bench{run}")

    @cashews(ttl="10m", key="c:{k}")
    async def cashews_get(k: int) -> dict[str, Any]:
        return ROW

    @cache.cached(key="r:{k}", ttl=600.0)
    async def rung_get(k: int) -> dict[str, Any]:
        return ROW

    async def raw_get(k: int) -> Any:
        value = await raw.get(f"raw{run}:{k}")
        if value is None:
            await raw.set(f"raw{run}:{k}", orjson.dumps(ROW), ex=600)
            return ROW
        return orjson.loads(value)

    async def rung_get_or_load(k: int) -> Any:
        return await cache.get_or_load(f"g:{k}", load_row, ttl=600.0)

    hot: dict[str, Callable[[int], Awaitable[object]]] = {
        "raw": lambda i: raw_get(i % KEYS),
        "cashews": lambda i: cashews_get(i % KEYS),
        "rung_cached": lambda i: rung_get(i % KEYS),
        "rung_get_or_load": lambda i: rung_get_or_load(i % KEYS),
    }
    for op in hot.values():  # warm every key
        await asyncio.gather(*(op(k) for k in range(KEYS)))
    fresh = itertools.count(KEYS)  # one never-seen key per miss, shared by every variant
    cold: dict[str, Callable[[int], Awaitable[object]]] = {
        "raw": lambda _: raw_get(next(fresh)),
        "cashews": lambda _: cashews_get(next(fresh)),
        "rung_cached": lambda _: rung_get(next(fresh)),
    }
    results: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        for tasks in (1, 16):
            for name, op in hot.items():
                results.setdefault(f"hit_{tasks}task_{name}", []).append(
                    await rate(op, tasks=tasks, seconds=SECONDS)
                )
        for name, op in cold.items():
            results.setdefault(f"miss_1task_{name}", []).append(
                await rate(op, tasks=1, seconds=SECONDS)
            )
    stats = cache.stats()
    assert stats["errors"] == 0, stats
    await cache.close()
    await raw.aclose()
    await cashews.close()
    med = {k: statistics.median(v) for k, v in results.items()}
    out: dict[str, float] = {k: round(v) for k, v in med.items()}
    for path in ("hit_1task", "hit_16task", "miss_1task"):
        out[f"{path}_rung_vs_cashews"] = round(
            med[f"{path}_rung_cached"] / med[f"{path}_cashews"], 3
        )
        out[f"{path}_rung_vs_raw"] = round(med[f"{path}_rung_cached"] / med[f"{path}_raw"], 3)
    return out


if __name__ == "__main__":
    with stack_urls(replicas=1) as urls:
        result = asyncio.run(main(urls["cache_url"]))
    report(result, "calls/s | ratio")
