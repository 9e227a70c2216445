"""asyncio helpers that rung's modules share.

if await wait_set(stopping, 0.5):   # woke early: stop
    return
async with deadline(1.0):           # TimeoutError after 1 s, even against code that
    await redis.get(key)            # swallows a cancellation
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

_AGAIN = 0.01  # seconds between cancellations once a deadline has passed


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `event`; whether it is set. (asyncio.timeout, not
    wait_for: 3.11's wait_for can swallow a cancellation.)"""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


class deadline:  # a lower-case name: it reads like the asyncio.timeout it stands in for
    """`asyncio.timeout(seconds)` that holds against code that swallows one cancellation,
    as redis-py's connect does on 3.11 through `asyncio.wait_for` (python/cpython#86296):
    past the deadline the task is cancelled again every 10 ms until the block ends, which
    then raises `TimeoutError`. A cancellation from outside stays a cancellation."""

    __slots__ = ("_cancels", "_entered", "_handle", "_seconds", "_task")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._cancels = 0

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("deadline() needs a running task")
        self._task = task
        self._entered = task.cancelling()
        self._handle = asyncio.get_running_loop().call_later(self._seconds, self._expire)

    def _expire(self) -> None:
        self._cancels += 1
        self._task.cancel()
        self._handle = asyncio.get_running_loop().call_later(_AGAIN, self._expire)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._handle.cancel()
        for _ in range(self._cancels):
            self._task.uncancel()  # ours: each one we made
        outside = self._task.cancelling() > self._entered  # asked to cancel while in here
        if kind is asyncio.CancelledError and self._cancels and not outside:
            raise TimeoutError(f"no result within {self._seconds}s") from error
        if kind is None and outside:  # swallowed inside the block: it stays a cancellation
            raise asyncio.CancelledError()
