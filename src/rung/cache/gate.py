"""At most `size` Redis calls in flight from one `Cache`; a caller waits at most `timeout`
for a turn. redis-py's own bounded pool does the same with a lock, a condition and a timer
on every call; this costs one uncontended semaphore acquire on the hit path.

    gate = Gate(size=50, timeout=1.0)
    async with gate:
        await redis.get(key)
"""

from __future__ import annotations

import asyncio

from redis.exceptions import ConnectionError as RedisConnectionError


class Gate:
    def __init__(self, *, size: int, timeout: float) -> None:
        self.size = size
        self._timeout = timeout
        self._slots = asyncio.Semaphore(size)

    async def __aenter__(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns at once, no timer
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError as e:
            raise RedisConnectionError(
                f"all {self.size} Redis connections stayed busy for {self._timeout}s"
            ) from e

    async def __aexit__(self, *exc: object) -> None:
        self._slots.release()
