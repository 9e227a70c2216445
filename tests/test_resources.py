"""One contract for every rung object that holds connections or tasks: `open()`, `close()`
and `async with`; after `close()` nothing it started is still running (nor any connection
open: the suite turns a leaked socket's ResourceWarning into a failure)."""

from __future__ import annotations

import asyncio
import secrets
import time

import orjson
import pytest
import redis.asyncio as aioredis

import rung
from rung.testing import RungStack
from tests.helpers import poll


def others() -> set[asyncio.Task[object]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["Database", "Cache", "Queue", "Singleton"])
async def test_each_opens_closes_and_is_an_async_context(rung_stack: RungStack, kind: str) -> None:
    make = {
        "Database": lambda: rung.Database(rung_stack.primary_url, rung_stack.replica_urls),
        "Cache": lambda: rung.Cache(rung_stack.cache_url, namespace=secrets.token_hex(4)),
        "Queue": lambda: rung.Queue(rung_stack.queue_url, stream=secrets.token_hex(4)),
        "Singleton": lambda: rung.Singleton(rung_stack.queue_url, name=secrets.token_hex(4)),
    }[kind]
    before = others()
    resource = make()
    await resource.open()
    await resource.close()
    async with make() as entered:
        assert isinstance(entered, getattr(rung, kind))
    assert others() == before


async def test_a_drain_cancelled_mid_batch_leaves_no_task(rung_stack: RungStack) -> None:
    """Handlers that never end, two batches in flight, and the cancellation arriving while
    the drain reads from Redis: run() still ends, and nothing it started runs on."""
    started = asyncio.Event()

    async def held(event: dict[str, object]) -> None:
        started.set()
        await asyncio.Event().wait()

    before = others()
    async with rung.Queue(rung_stack.queue_url, stream=secrets.token_hex(4)) as queue:
        await queue.put_many([{"n": i} for i in range(50)])
        for _ in range(5):  # the cancellation lands at a different point each time
            drain = rung.Drain(queue, rung.HandlerSink(held), batch_size=10, claim_idle=1.0)
            started.clear()
            task = asyncio.create_task(drain.run())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), 10.0)
    assert others() == before


class Held:
    """A loader that never returns; `started` is set once it was called."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        self.started.set()
        await asyncio.Event().wait()
        return "never"


async def test_closing_a_cache_ends_every_fill_it_owns(rung_stack: RungStack) -> None:
    """Fills held in their loaders (this cache holds the lease, with callers joined), a fill
    polling for another process's lease, a decorated call and an early refresh, all in flight:
    close() ends each of them, every caller sees a cancellation, the leases are given back
    and nothing the cache started runs on."""
    ns = secrets.token_hex(4)
    async with (
        asyncio.timeout(30.0),
        aioredis.Redis.from_url(rung_stack.cache_url) as r,
    ):
        # Another process holds the lease on 'theirs' for longer than the test.
        await r.set(f"{ns}:l:theirs", "another-process", px=60_000)
        # An entry as rung.cache.entry lays it out ([expires_at, delta, stamps, value]), past
        # its expiry by its own clock while Redis still holds it: XFetch refreshes it surely.
        await r.set(f"{ns}:v:hot", orjson.dumps([time.time() - 1.0, 1.0, {}, "old"]), px=60_000)

        cache = rung.Cache(rung_stack.cache_url, namespace=ns, lease_timeout=60.0)
        await cache.open()
        ours, decorated, refresh = Held(), Held(), Held()

        @cache.cached(key="item:{n}")
        async def item(n: int) -> str:
            return await decorated()

        def call(key: str, loader: Held) -> asyncio.Task[str]:
            return asyncio.create_task(cache.get_or_load(key, loader))

        def misses(n: int) -> bool:
            return cache.stats()["misses"] == n

        callers = [call("ours", ours)]
        await ours.started.wait()  # this cache holds the lease on 'ours'
        callers += [call("ours", Held()) for _ in range(2)]  # they join the load
        callers.append(call("theirs", Held()))
        await poll(lambda: misses(4))  # its fill is polling for the other process's lease
        callers += [call("theirs", Held()) for _ in range(2)]
        callers.append(asyncio.create_task(item(1)))
        await decorated.started.wait()
        assert await cache.get_or_load("hot", refresh) == "old"  # served while it refreshes
        await refresh.started.wait()
        await poll(lambda: misses(7) and cache.stats()["coalesced"] == 4)
        assert cache.stats()["refreshes"] == 1
        assert (ours.calls, decorated.calls, refresh.calls) == (1, 1, 1)

        await cache.close()

        outcomes = await asyncio.gather(*callers, return_exceptions=True)
        assert [type(o) for o in outcomes] == [asyncio.CancelledError] * len(callers)
        assert others() == set()
        assert await r.exists(f"{ns}:l:ours", f"{ns}:l:item:1", f"{ns}:l:hot") == 0
        assert await r.get(f"{ns}:l:theirs") == b"another-process"  # not ours to release


async def test_a_closed_cache_serves_again_and_closes_again(rung_stack: RungStack) -> None:
    """close() is not final: a later call reconnects, and the next close() ends its work."""
    cache = rung.Cache(rung_stack.cache_url, namespace=secrets.token_hex(4), local_size=10)
    async with asyncio.timeout(30.0):
        async with cache:
            await cache.set("k", "v")
        assert await cache.get_or_load("k", Held()) == "v"
        held = Held()
        loading = asyncio.create_task(cache.get_or_load("other", held))
        await held.started.wait()
        await cache.close()
        with pytest.raises(asyncio.CancelledError):
            await loading
    assert others() == set()
