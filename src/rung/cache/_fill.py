"""Loading a missed key and filling it under its lease.

    request = FillRequest("link:abc", loader, ttl=57.3, tags=("owner:7",), observed=token)
    value = await filler.fill(request, flight)      # a miss: take the lease, or wait for it
    await filler.refresh(request)                   # XFetch chose this caller: refresh early

The loader runs under `db.observe(...)` of the latest consistency token among the caller's,
the key's invalidation marker and its tags' (see `rung.cache._leases`). The fill is written
only if the lease is still current; a voided one is counted in `stale_fills_rejected`, and
the loader's own caller still gets the value it loaded.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from rung.cache._breaker import Breaker
from rung.cache._entry import decoded, encode
from rung.cache._flights import Flight
from rung.cache._lease_client import LeaseClient
from rung.cache._leases import Busy, Found, Lease, ms
from rung.cache._near import NearCache
from rung.cache._stats import Stats
from rung.db import _lsn as lsn
from rung.errors import CacheError

if TYPE_CHECKING:
    from rung.db import Database

Loader = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class FillRequest:
    """What one fill needs: `ttl` in seconds, jitter applied; `observed` the consistency
    token its load must observe (None: none)."""

    key: str
    loader: Loader
    ttl: float
    tags: tuple[str, ...]
    observed: str | None

    def observing(self, token: str | None) -> FillRequest:
        """This request, its load observing `token` too."""
        return replace(self, observed=lsn.later(self.observed, token))


class Filler:
    """Runs fills for one `Cache`, with its lease client, counters and near cache.
    `failed` counts a failed Redis call (and may open the breaker)."""

    def __init__(
        self, client: LeaseClient, *, db: Database | None, stats: Stats, breaker: Breaker,
        near: NearCache | None, failed: Callable[[CacheError], None],
    ) -> None:  # fmt: skip
        self._client = client
        self._leases = client.leases
        self._db = db
        self._stats = stats
        self._breaker = breaker
        self._near = near
        self._failed = failed

    async def fill(self, request: FillRequest, flight: Flight) -> Any:
        """Take the lease and load, or wait for the holder's fill; bounded by the lease
        timeout, after which this caller loads without caching."""
        if not self._breaker.allow():
            return await self._load_uncached(request)
        try:
            got = await self._client.acquire(request.key, request.tags)
        except CacheError as e:
            self._failed(e)
            return await self._load_uncached(request)
        if isinstance(got, Found):
            self._stats.coalesced += 1  # another caller's fill landed first
            return got.entry.value
        if isinstance(got, Busy):
            return await self._load_uncached(request)
        request = request.observing(got.token_lsn)
        flight.observed = request.observed  # callers that must see up to it may join now
        return await self._load_and_fill(request, got)

    async def refresh(self, request: FillRequest) -> None:
        """Reload `request.key` while its current value is served; an invalidation during
        the load voids the refresh, and a key another caller is loading is left to it."""
        try:
            got = await self._leases.take(request.key, request.tags, free=True)
        except CacheError as e:
            self._failed(e)
            return
        if isinstance(got, Lease):
            await self._load_and_fill(request.observing(got.token_lsn), got)

    async def _load_and_fill(self, request: FillRequest, lease: Lease) -> Any:
        key, tags, near = request.key, request.tags, self._near
        epoch = near.epoch if near is not None else 0
        try:
            started = time.perf_counter()
            value = await self._load(request)
            delta = time.perf_counter() - started
            raw = encode(key, value, ttl=request.ttl, delta=delta, stamps=lease.stamps(tags))
        except BaseException:
            # Cancelled or failed: give the lease back, so waiters need not wait it out.
            with contextlib.suppress(CacheError):
                await self._leases.release(key, lease)
            raise
        entry = decoded(raw)
        try:
            filled = await self._leases.fill(key, tags, lease, raw, ms(request.ttl))
        except CacheError as e:
            self._failed(e)
            return entry.value
        if not filled:
            self._stats.stale_fills_rejected += 1
        elif near is not None:
            near.put(key, entry, epoch)
        return entry.value

    async def _load_uncached(self, request: FillRequest) -> Any:
        value = await self._load(request)
        # A hit returns the JSON round trip: so does a load that could not be cached.
        return decoded(encode(request.key, value, ttl=0.0, delta=0.0, stamps={})).value

    async def _load(self, request: FillRequest) -> Any:
        started = time.perf_counter()
        try:
            if self._db is not None and request.observed is not None:
                with self._db.observe(request.observed):
                    return await request.loader()
            return await request.loader()
        finally:
            self._stats.loads += 1
            self._stats.load_seconds += time.perf_counter() - started
