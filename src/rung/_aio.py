"""asyncio helpers that rung's modules share.

if await wait_set(stopping, 0.5):   # woke early: stop
    return
"""

from __future__ import annotations

import asyncio
import contextlib


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `event`; whether it is set. (asyncio.timeout, not
    wait_for: 3.11's wait_for can swallow a cancellation.)"""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()
