"""Every `stats()` returns exactly the keys of its TypedDict in `rung.types`, used for real."""

from __future__ import annotations

import secrets

import rung
from rung.testing import MemoryBroker, RungStack


def keys(typed: type) -> set[str]:
    return set(typed.__required_keys__) | set(typed.__optional_keys__)  # type: ignore[attr-defined]


async def test_database_stats_are_node_stats_per_node(rung_stack: RungStack) -> None:
    async with rung.Database(rung_stack.primary_url, rung_stack.replica_urls) as db:
        await db.fetchval("SELECT 1")
        stats: rung.DatabaseStats = db.stats()
    assert list(stats) == [
        "primary",
        *(f"replica{i}" for i in range(1, len(rung_stack.replica_urls) + 1)),
    ]
    for node in stats.values():
        assert set(node) == keys(rung.NodeStats)
    assert stats["primary"]["role"] == "primary"
    assert sum(node["queries"] for node in stats.values()) == 1


async def test_cache_stats_are_cache_stats(rung_stack: RungStack) -> None:
    async with rung.Cache(rung_stack.cache_url, namespace=secrets.token_hex(4)) as cache:

        async def load() -> int:
            return 7

        assert await cache.get_or_load("k", load, ttl=60) == 7
        assert await cache.get_or_load("k", load, ttl=60) == 7
        stats: rung.CacheStats = cache.stats()
    assert set(stats) == keys(rung.CacheStats)
    assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (1, 1, 0.5)


async def test_queue_and_drain_stats_are_theirs(rung_stack: RungStack) -> None:
    async with rung.Queue(rung_stack.queue_url, stream=secrets.token_hex(4)) as queue:
        await queue.put({"n": 1})
        stats: rung.QueueStats = await queue.stats()
    assert set(stats) == keys(rung.QueueStats)
    assert stats["depth"] == 1
    memory = await MemoryBroker(stream="m").stats()
    assert set(memory) == keys(rung.QueueStats)
    seen: list[object] = []

    async def handle(event: dict[str, object]) -> None:
        seen.append(event)

    drain = rung.Drain(rung.Queue(broker=MemoryBroker(stream="d")), rung.HandlerSink(handle))
    drained: rung.DrainStats = drain.stats()
    assert set(drained) == keys(rung.DrainStats)
    assert drained["written"] == 0 and drained["rate"] is None
