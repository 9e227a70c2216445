"""rung.Cache: cache-aside over Redis whose fills cannot go stale.

    cache = rung.Cache("redis://127.0.0.1:6380/0", namespace="links", db=db)
    link = await cache.get_or_load(f"link:{slug}", lambda: load_link(slug), ttl=60.0)
    ...
    async with db.transaction():
        await db.execute("UPDATE links SET target_url = $1 WHERE slug = $2", url, slug)
        db.after_commit(cache.invalidate, f"link:{slug}")

A miss takes a lease; the fill is written only if no invalidation came meanwhile (see
`rung.cache._leases`). Concurrent misses on one key share one load: in-process through a
shared task, across processes by waiting for the lease holder. The invalidation records
the writer's consistency token, and the next fill, in any process, loads under
`db.observe(token)`. Reads fail open: with Redis unreachable the loader's value is returned
and a circuit breaker spares later calls the wait.

`Cache` holds the wiring, reads, writes and stats; the rest lives by concept: `flights`
(in-process single-flight, and every task the cache owns), `lease_client` (taking a lease,
waiting out another holder), `fill` (loading and filling under the lease), `decorator`
(`cached`), `leases` (the Lua scripts), `entry`, `near`, `breaker`, `stats`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from rung._options import count, seconds
from rung._redis import Store
from rung.cache._breaker import Breaker
from rung.cache._decorator import Cached
from rung.cache._entry import Entry, decode, encode, jittered
from rung.cache._fill import Filler, FillRequest
from rung.cache._flights import Flights
from rung.cache._lease_client import LeaseClient
from rung.cache._leases import KeySpace, Leases, ms
from rung.cache._near import NearCache
from rung.cache._stats import Stats
from rung.errors import CacheError, CacheUnavailable
from rung.types import CacheStats

if TYPE_CHECKING:
    from rung.db import Database

T = TypeVar("T")
P = ParamSpec("P")

log = logging.getLogger("rung.cache")

_COOLDOWN = 1.0  # seconds the breaker keeps calls off Redis after a failure
_MAX_TTL = 366 * 86_400.0  # seconds: a year and a day; Redis refuses absurd expiries
_GENERATION_S = 86_400.0  # seconds a tag generation lives past its last use, at least


class Cache:
    """Cache-aside over Redis (see the module docstring).

    Keyword-only settings, seconds as floats: `namespace` prefixes every Redis key;
    `default_ttl` when a call gives none; `local_size` > 0 turns on an in-process near
    cache of that many entries; `db` lets fills observe invalidations' consistency tokens;
    `jitter` shortens each TTL by a random fraction up to it; `early_refresh` is XFetch's β
    (0 turns early refresh off); `lease_timeout` bounds a lease and how long a miss waits
    for another holder; `timeout` bounds each Redis call and the wait for one of the
    `max_connections` connections.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "rung",
        default_ttl: float = 60.0,
        local_size: int = 0,
        db: Database | None = None,
        jitter: float = 0.1,
        early_refresh: float = 1.0,
        lease_timeout: float = 5.0,
        timeout: float = 1.0,
        max_connections: int = 50,
    ) -> None:
        if not namespace or ":" in namespace:
            raise ValueError(f"namespace must be non-empty, without ':' (got {namespace!r})")
        self.default_ttl = seconds("default_ttl", default_ttl, positive=True, most=_MAX_TTL)
        self._db = db
        self._jitter = seconds("jitter", jitter, most=0.99)
        self._beta = seconds("early_refresh", early_refresh, most=100.0)
        lease_timeout = seconds("lease_timeout", lease_timeout, positive=True)
        timeout = seconds("timeout", timeout, positive=True, most=600.0)
        local_size = count("local_size", local_size)
        max_connections = count("max_connections", max_connections, least=1, most=100_000)
        self._store = Store(url, timeout=timeout, unavailable=CacheUnavailable,
                            rejected=CacheError, max_connections=max_connections)  # fmt: skip
        self._keys = KeySpace(namespace)
        # A marker (and a tag generation's token) outlives any lag a serving replica may
        # have (db.max_lag), by far.
        marker_s = max(60.0, 10 * db.max_lag) if db is not None else 60.0
        self._leases = Leases(
            self._store, self._keys, lease_ms=ms(lease_timeout), marker_ms=ms(marker_s),
            generation_ms=ms(max(marker_s, _GENERATION_S)),
        )  # fmt: skip
        self._near = (
            NearCache(url, self._keys.channel, size=local_size, timeout=timeout)
            if local_size
            else None
        )
        self._breaker = Breaker(cooldown=_COOLDOWN)
        self._stats = Stats()
        self._flights = Flights()
        self._filler = Filler(
            LeaseClient(self._leases, timeout=lease_timeout), db=db, stats=self._stats,
            breaker=self._breaker, near=self._near, failed=self._failed,
        )  # fmt: skip

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Start the near cache's subscription (otherwise started by the first call)."""
        if self._near is not None:
            self._near.start()

    async def close(self) -> None:
        """End every load and early refresh in flight (cancelled and awaited: their callers
        see a cancellation, their leases are given back), stop the near cache and close the
        connections. Not final: a later call reconnects, and the next close() ends its work.
        A call still running when close() begins may start work after it: close once the
        callers are done (an app's lifespan does)."""
        await self._flights.close()
        if self._near is not None:
            await self._near.close()
        await self._store.close()

    async def __aenter__(self) -> Cache:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- reads ---------------------------------------------------------------------------------

    async def get_or_load(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        *,
        ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> T:
        """The cached value of `key`, else `await loader()`, cached for `ttl` seconds and
        stamped with `tags`. Returns what a hit returns: the JSON round trip of the value.

        >>> link = await cache.get_or_load("link:abc", lambda: fetch_link("abc"), ttl=60.0)
        """
        tags, ttl = tuple(tags), _ttl("ttl", ttl)
        token = self._token()
        flight = self._flights.joinable(key, token)
        if flight is not None:
            self._stats.misses += 1
            self._stats.coalesced += 1
            value = await self._flights.wait(flight)
        else:
            entry = await self._lookup(key, tags)
            if entry is not None:
                if entry.refresh_early(self._beta):
                    self._refresh_soon(FillRequest(key, loader, self._lifetime(ttl), tags, token))
                value = entry.value
            else:
                request = FillRequest(key, loader, self._lifetime(ttl), tags, token)
                fill = functools.partial(self._filler.fill, request)
                value = await self._flights.wait(self._flights.start(key, tags, token, fill))
        # The JSON round trip of what a loader returned: T only as far as JSON keeps it.
        return cast(T, value)

    async def get(self, key: str, default: Any = None) -> Any:
        """The cached value of `key`, or `default` on a miss (or with Redis unreachable)."""
        entry = await self._lookup(key, ())
        return default if entry is None else entry.value

    async def _lookup(self, key: str, tags: tuple[str, ...]) -> Entry | None:
        """A fresh entry from the near cache or Redis, counted as a hit or a miss."""
        stats, near = self._stats, self._near
        epoch = 0
        if near is not None:
            near.start()
            if near.live:
                entry = near.get(key)
                if entry is not None:
                    stats.hits += 1
                    stats.local_hits += 1
                    if near.due_a_yield():
                        await asyncio.sleep(0)
                    return entry
                epoch = near.epoch
        if self._breaker.allow():
            try:
                entry = await self._read(key, tags)
            except CacheError as e:
                self._failed(e)
            else:
                self._breaker.success()
                if entry is not None:
                    stats.hits += 1
                    if near is not None:
                        near.put(key, entry, epoch)
                    return entry
        stats.misses += 1
        return None

    async def _read(self, key: str, tags: tuple[str, ...]) -> Entry | None:
        keys, run = self._keys, self._store.run
        vkey = keys.value(key)
        raw: Any
        generations: Any  # bytes | None each (decode_responses is off)
        if tags:
            names = [vkey, *map(keys.tag, tags)]
            raw, *generations = await run(lambda r: r.mget(names), idempotent=True)
        else:
            raw, generations = await run(lambda r: r.get(vkey), idempotent=True), []
        if raw is None:
            return None
        entry = decode(raw)
        if entry is None or not (entry.stamps or tags):
            return entry
        if entry.stamps.keys() != set(tags):  # stamped with other tags than this call names
            tags = tuple(entry.stamps)
            names = list(map(keys.tag, tags))
            generations = await run(lambda r: r.mget(names), idempotent=True)
        return entry if entry.fresh(tags, generations) else None

    def _refresh_soon(self, request: FillRequest) -> None:
        """XFetch chose this caller: refresh the key in the background (unless it is
        loading already) while the current value is served."""
        if self._flights.refresh(request.key, functools.partial(self._filler.refresh, request)):
            self._stats.refreshes += 1

    def _lifetime(self, ttl: float | None) -> float:
        """The TTL in seconds to store an entry with: `ttl` or the default, jittered."""
        return jittered(self.default_ttl if ttl is None else ttl, self._jitter)

    # --- writes --------------------------------------------------------------------------------

    async def set(
        self, key: str, value: Any, *, ttl: float | None = None, tags: Iterable[str] = ()
    ) -> None:
        """Store `value` under `key`, replacing what is there (near caches drop theirs).
        `CacheUnavailable` when Redis cannot be reached: the old value may still be there."""
        tags, ttl = tuple(tags), _ttl("ttl", ttl)
        self._detach(key)
        try:
            lease = await self._leases.force(key, tags)
            ttl_s = self._lifetime(ttl)
            try:
                raw = encode(key, value, ttl=ttl_s, delta=0.0, stamps=lease.stamps(tags))
            except CacheError:
                await self._leases.release(key, lease)
                raise
            await self._leases.fill(key, tags, lease, raw, ms(ttl_s), notify=True)
        except CacheError as e:
            self._failed(e)
            raise

    async def invalidate(self, key: str) -> None:
        """Delete `key` and void any fill in flight, recording this context's consistency
        token for the next fill. Use after commit: `db.after_commit(cache.invalidate, key)`.
        `CacheUnavailable` when Redis cannot be reached."""
        self._detach(key)
        token = await self._recorded_token()
        try:
            await self._leases.invalidate(key, token)
        except CacheError as e:
            self._failed(e)
            raise

    async def invalidate_tags(self, *tags: str) -> None:
        """Make every entry stamped with one of `tags` miss (a new generation per tag).
        `CacheUnavailable` when Redis cannot be reached."""
        if not tags:
            return
        self._flights.detach_tagged(tags)
        if self._near is not None:
            self._near.clear()
        token = await self._recorded_token()
        try:
            await self._leases.invalidate_tags(tags, token)
        except CacheError as e:
            self._failed(e)
            raise

    def _detach(self, key: str) -> None:
        """Later callers of `key` in this process start a new load instead of joining one
        that began before this write; the old load's fill is voided in Redis."""
        self._flights.detach(key)
        if self._near is not None:
            self._near.drop(key)

    def _token(self) -> str | None:
        return self._db.token() if self._db is not None else None

    async def _recorded_token(self) -> str | None:
        """The token an invalidation records for other processes: never past the primary's
        WAL position, so a token from outside cannot be stored to hold every refill back."""
        return await self._db.bounded_token() if self._db is not None else None

    # --- the decorator -------------------------------------------------------------------------

    def cached(
        self, *, key: str, ttl: float | None = None, tags: Iterable[str] = ()
    ) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
        """Cache an async function's result under a key template filled from its arguments
        (see `rung.cache._decorator`).

        >>> @cache.cached(key="link:{slug}", ttl=60.0, tags=("owner:{owner_id}",))
        ... async def load_link(slug: str, owner_id: int) -> dict | None: ...
        """
        return Cached(self, key=key, ttl=_ttl("ttl", ttl), tags=tuple(tags))

    # --- health --------------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """What this Cache did (`rung.CacheStats`): hits, local_hits, misses, hit_rate,
        coalesced, loads, load_seconds, refreshes, stale_fills_rejected, errors; and the
        breaker ('closed'/'open') and near cache ('off', 'live', 'dark') now."""
        near = self._near
        return self._stats.snapshot(
            breaker="closed" if self._breaker.closed else "open",
            near="off" if near is None else ("live" if near.live else "dark"),
        )

    def _failed(self, error: CacheError) -> None:
        """Count a failed Redis call; only an unreachable Redis opens the breaker (a command
        Redis refused says nothing about the next call)."""
        self._stats.errors += 1
        if isinstance(error, CacheUnavailable):
            self._breaker.failure()
        log.debug("cache Redis call failed: %r", error)


def _ttl(name: str, ttl: float | None) -> float | None:
    """A TTL in seconds: None (the default), or finite, > 0 and at most a year and a day.
    `ttl=0` is refused, not read as "the default" or "do not cache"."""
    return None if ttl is None else seconds(name, ttl, positive=True, most=_MAX_TTL)
