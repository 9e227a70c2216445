"""One contract for every rung object that holds connections or tasks: `open()`, `close()`
and `async with`; after `close()` nothing it started is still running (nor any connection
open: the suite turns a leaked socket's ResourceWarning into a failure)."""

from __future__ import annotations

import asyncio
import secrets

import pytest

import rung
from rung.testing import RungStack


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
