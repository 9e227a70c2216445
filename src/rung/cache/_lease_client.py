"""Taking a key's lease for a fill, waiting out another holder (this process's or not).

    client = LeaseClient(leases, timeout=5.0)
    got = await client.acquire("link:abc", ("owner:7",))
    # Lease: ours, load and fill; Found: the holder's fill landed; Busy: waited `timeout`

The wait is a poll: the holder's fill is one Lua script that sends nothing to waiters, and
a holder that died leaves only a lease that expires. Pauses double from 1 ms up to 50 ms,
so a fast fill is picked up at once and a slow one costs Redis a few calls a second.
"""

from __future__ import annotations

import asyncio
import time

from rung.cache._leases import Busy, Found, Lease, Leases

_FIRST_PAUSE = 0.001  # seconds
_MAX_PAUSE = 0.05  # seconds, the longest pause between looks at another holder's lease


class LeaseClient:
    def __init__(self, leases: Leases, *, timeout: float) -> None:
        self.leases = leases
        self.timeout = timeout

    async def acquire(self, key: str, tags: tuple[str, ...]) -> Found | Lease | Busy:
        """The lease on `key`, or the fresh value another holder's fill left; `Busy` when
        another holder kept the lease for `timeout` seconds. Raises `CacheError`."""
        deadline = time.monotonic() + self.timeout
        pause = _FIRST_PAUSE
        while True:
            got = await self.leases.take(key, tags)
            if not isinstance(got, Busy) or time.monotonic() + pause > deadline:
                return got
            await asyncio.sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE)
