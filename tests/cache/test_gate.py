"""The gate that bounds Redis calls in flight (asyncio only, no server)."""

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from rung.cache.gate import Gate


async def test_no_more_than_size_callers_are_inside_at_once() -> None:
    gate = Gate(size=3, timeout=5.0)
    inside = peak = 0

    async def call() -> None:
        nonlocal inside, peak
        async with gate:
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.gather(*(call() for _ in range(50)))
    assert peak == 3


async def test_a_caller_that_waits_past_the_timeout_gets_a_redis_connection_error() -> None:
    gate = Gate(size=1, timeout=0.05)
    release = asyncio.Event()

    async def holder() -> None:
        async with gate:
            await release.wait()

    task = asyncio.create_task(holder())
    await asyncio.sleep(0)
    with pytest.raises(RedisConnectionError, match="all 1 Redis connections stayed busy"):
        async with gate:
            pass
    release.set()
    await task
