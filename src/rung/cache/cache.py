"""rung.Cache: cache-aside over Redis whose fills cannot go stale.

    cache = rung.Cache("redis://127.0.0.1:6380/0", namespace="links", db=db)
    link = await cache.get_or_load(f"link:{slug}", lambda: load_link(slug), ttl=60.0)
    ...
    async with db.transaction():
        await db.execute("UPDATE links SET target_url = $1 WHERE slug = $2", url, slug)
        db.after_commit(cache.invalidate, f"link:{slug}")

A miss takes a lease; the fill is written only if no invalidation came meanwhile (see
`rung.cache.leases`). Concurrent misses on one key share one load: in-process through a
shared task, across processes by waiting for the lease holder. The invalidation records
the writer's consistency token, and the next fill, in any process, loads under
`db.observe(token)`. Reads fail open: with Redis unreachable the loader's value is returned
and a circuit breaker spares later calls the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import string
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from rung._options import count, seconds
from rung._redis import Store
from rung.cache.breaker import Breaker
from rung.cache.entry import Entry, decode, encode, jittered
from rung.cache.leases import Found, KeySpace, Lease, Leases
from rung.cache.near import NearCache
from rung.cache.stats import Stats
from rung.db import lsn
from rung.errors import CacheError, CacheUnavailable

if TYPE_CHECKING:
    from rung.db import Database

T = TypeVar("T")
P = ParamSpec("P")
Loader = Callable[[], Awaitable[Any]]

log = logging.getLogger("rung.cache")

_COOLDOWN = 1.0  # seconds the breaker keeps calls off Redis after a failure
_MAX_TTL = 366 * 86_400.0  # seconds: a year and a day; Redis refuses absurd expiries
_GENERATION_S = 86_400.0  # seconds a tag generation lives past its last use, at least
_MAX_PAUSE = 0.05  # seconds, the longest pause between looks at another holder's lease


@dataclass(slots=True)
class _Flight:
    """One load in progress in this process; callers of the same key join it."""

    tags: tuple[str, ...]
    observed: str | None  # the consistency token the load observes
    task: asyncio.Task[Any] = field(init=False)


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
        self._lease_timeout = seconds("lease_timeout", lease_timeout, positive=True)
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
            self._store, self._keys, lease_ms=_ms(self._lease_timeout), marker_ms=_ms(marker_s),
            generation_ms=_ms(max(marker_s, _GENERATION_S)),
        )  # fmt: skip
        self._near = (
            NearCache(url, self._keys.channel, size=local_size, timeout=timeout)
            if local_size
            else None
        )
        self._breaker = Breaker(cooldown=_COOLDOWN)
        self._stats = Stats()
        self._flights: dict[str, _Flight] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Start the near cache's subscription (otherwise started by the first call)."""
        if self._near is not None:
            self._near.start()

    async def close(self) -> None:
        """Stop early refreshes and the near cache; close the connections."""
        for task in list(self._refreshing.values()):
            task.cancel()
        await asyncio.gather(*self._refreshing.values(), return_exceptions=True)
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
        flight = self._flights.get(key)
        if flight is not None and self._may_join(flight):
            self._stats.misses += 1
            self._stats.coalesced += 1
            return await asyncio.shield(flight.task)
        entry = await self._lookup(key, tags)
        if entry is not None:
            if entry.refresh_early(self._beta):
                self._refresh_soon(key, loader, ttl, tags)
            return entry.value  # type: ignore[no-any-return]
        return await self._start_flight(key, loader, ttl, tags)  # type: ignore[no-any-return]

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

    # --- loads ---------------------------------------------------------------------------------

    def _may_join(self, flight: _Flight) -> bool:
        """A caller whose context must see a later write than the load observes does not
        take its result (read-your-writes); everyone else does."""
        token = self._token()
        return token is None or lsn.later(flight.observed, token) == flight.observed

    async def _start_flight(
        self, key: str, loader: Loader, ttl: float | None, tags: tuple[str, ...]
    ) -> Any:
        flight = _Flight(tags, self._token())
        flight.task = asyncio.create_task(self._fill(key, flight, loader, ttl))
        self._flights[key] = flight
        flight.task.add_done_callback(functools.partial(self._landed, key, flight))
        return await asyncio.shield(flight.task)

    def _landed(self, key: str, flight: _Flight, task: asyncio.Task[Any]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved: every caller that wanted it has it

    async def _fill(self, key: str, flight: _Flight, loader: Loader, ttl: float | None) -> Any:
        """Take the lease and load, or wait for the holder's fill; bounded by
        `lease_timeout`, after which this caller loads without caching."""
        tags = flight.tags
        if not self._breaker.allow():
            return await self._load_uncached(key, loader, flight.observed)
        deadline = time.monotonic() + self._lease_timeout
        pause = 0.001
        mode: Any = "miss"
        while True:
            try:
                got = await self._leases.take(mode, key, tags)
            except CacheError as e:
                self._failed(e)
                return await self._load_uncached(key, loader, flight.observed)
            if isinstance(got, Lease):
                flight.observed = lsn.later(flight.observed, got.token_lsn)
                return await self._load_and_fill(key, tags, got, loader, ttl, flight.observed)
            if isinstance(got, Found):
                entry = decode(got.raw)
                if entry is not None and entry.fresh(tags, got.tags):
                    self._stats.coalesced += 1  # another caller's fill landed first
                    return entry.value
                mode = "free"  # the value there is stale by its tags: reload it
                continue
            if time.monotonic() + pause > deadline:
                return await self._load_uncached(key, loader, flight.observed)
            await asyncio.sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE)

    async def _load_and_fill(
        self,
        key: str,
        tags: tuple[str, ...],
        lease: Lease,
        loader: Loader,
        ttl: float | None,
        observed: str | None,
    ) -> Any:
        near = self._near
        epoch = near.epoch if near is not None else 0
        try:
            started = time.perf_counter()
            value = await self._load(loader, observed)
            raw, ttl_ms = self._entry(key, tags, lease, value, ttl, time.perf_counter() - started)
        except BaseException:
            with contextlib.suppress(CacheError):
                await self._leases.release(key, lease)
            raise
        try:
            filled = await self._leases.fill(key, tags, lease, raw, ttl_ms)
        except CacheError as e:
            self._failed(e)
            return decode(raw).value  # type: ignore[union-attr]
        entry = decode(raw)
        assert entry is not None
        if not filled:
            self._stats.stale_fills_rejected += 1
        elif near is not None:
            near.put(key, entry, epoch)
        return entry.value

    def _entry(
        self,
        key: str,
        tags: tuple[str, ...],
        lease: Lease,
        value: Any,
        ttl: float | None,
        delta: float,
    ) -> tuple[bytes, int]:
        """The entry's bytes, stamped with the generations the lease saw, and its jittered
        TTL in milliseconds."""
        ttl_s = jittered(self.default_ttl if ttl is None else ttl, self._jitter)
        stamps = {t: g.decode() for t, g in zip(tags, lease.generations, strict=True)}
        raw = encode(key, value, ttl=ttl_s, delta=delta, stamps=stamps)
        return raw, _ms(ttl_s)

    async def _load_uncached(self, key: str, loader: Loader, observed: str | None) -> Any:
        value = await self._load(loader, observed)
        return decode(encode(key, value, ttl=0.0, delta=0.0, stamps={})).value  # type: ignore[union-attr]

    async def _load(self, loader: Loader, observed: str | None) -> Any:
        started = time.perf_counter()
        try:
            if self._db is not None and observed is not None:
                with self._db.observe(observed):
                    return await loader()
            return await loader()
        finally:
            self._stats.loads += 1
            self._stats.load_seconds += time.perf_counter() - started

    def _refresh_soon(
        self, key: str, loader: Loader, ttl: float | None, tags: tuple[str, ...]
    ) -> None:
        """XFetch chose this caller: refresh `key` in the background; the current value is
        served meanwhile, and an invalidation during the load voids the refresh."""
        if key in self._refreshing or key in self._flights:
            return
        self._stats.refreshes += 1
        task = asyncio.create_task(self._refresh(key, loader, ttl, tags))
        self._refreshing[key] = task
        task.add_done_callback(functools.partial(self._refreshed, key))

    def _refreshed(self, key: str, task: asyncio.Task[None]) -> None:
        del self._refreshing[key]
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("early refresh of %r failed: %r", key, error)

    async def _refresh(
        self, key: str, loader: Loader, ttl: float | None, tags: tuple[str, ...]
    ) -> None:
        try:
            got = await self._leases.take("free", key, tags)
        except CacheError as e:
            self._failed(e)
            return
        if isinstance(got, Lease):  # else another caller is already loading it
            observed = lsn.later(self._token(), got.token_lsn)
            await self._load_and_fill(key, tags, got, loader, ttl, observed)

    # --- writes --------------------------------------------------------------------------------

    async def set(
        self, key: str, value: Any, *, ttl: float | None = None, tags: Iterable[str] = ()
    ) -> None:
        """Store `value` under `key`, replacing what is there (near caches drop theirs).
        `CacheUnavailable` when Redis cannot be reached: the old value may still be there."""
        tags, ttl = tuple(tags), _ttl("ttl", ttl)
        self._detach(key)
        try:
            lease = await self._leases.take("force", key, tags)
            assert isinstance(lease, Lease)
            try:
                raw, ttl_ms = self._entry(key, tags, lease, value, ttl, 0.0)
            except CacheError:
                await self._leases.release(key, lease)
                raise
            await self._leases.fill(key, tags, lease, raw, ttl_ms, notify=True)
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
        for key, flight in list(self._flights.items()):
            if not set(flight.tags).isdisjoint(tags):
                self._detach(key)
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
        self._flights.pop(key, None)
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
        """Cache an async function's result under a key template filled from its arguments.

        >>> @cache.cached(key="link:{slug}", ttl=60.0, tags=("owner:{owner_id}",))
        ... async def load_link(slug: str, owner_id: int) -> dict | None: ...
        """
        tag_templates, ttl = tuple(tags), _ttl("ttl", ttl)

        def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
            signature = inspect.signature(fn)
            for template in (key, *tag_templates):
                unknown = _fields(template) - signature.parameters.keys()
                if unknown:
                    raise ValueError(
                        f"{fn.__qualname__}: template {template!r} names {sorted(unknown)}, "
                        f"which are not parameters of the function"
                    )

            arguments = _binder(signature)

            @functools.wraps(fn)
            async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
                names = arguments(args, kwargs)
                return await self.get_or_load(
                    key.format_map(names),
                    functools.partial(fn, *args, **kwargs),
                    ttl=ttl,
                    tags=[t.format_map(names) for t in tag_templates],
                )

            return wrapper

        return decorate

    # --- health --------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """hits, local_hits, misses, hit_rate, coalesced, loads, load_seconds, refreshes,
        stale_fills_rejected, errors; plus breaker ('closed'/'open') and near ('off',
        'live', 'dark')."""
        out = self._stats.snapshot()
        out["breaker"] = "closed" if self._breaker.closed else "open"
        near = self._near
        out["near"] = "off" if near is None else ("live" if near.live else "dark")
        return out

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


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _binder(
    signature: inspect.Signature,
) -> Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]:
    """A fast `signature.bind(...)` + `apply_defaults()` for plain parameters; a call that
    does not fit (missing or unknown arguments, *args, **kwargs) takes the slow path, which
    raises the same TypeError the function would."""

    def slow(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.arguments

    params = signature.parameters.values()
    if any(p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params):
        return slow
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    defaults = {p.name: p.default for p in params if p.default is not p.empty}
    count = len(signature.parameters)

    def fast(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        names = defaults.copy()
        names.update(zip(positional, args, strict=False))
        names.update(kwargs)
        if len(names) != count or len(args) > len(positional):
            return slow(args, kwargs)
        return names

    return fast


def _fields(template: str) -> set[str]:
    """The top-level names a str.format template uses: 'link:{slug}' -> {'slug'}."""
    return {
        name.split(".")[0].split("[")[0]
        for _, name, _, _ in string.Formatter().parse(template)
        if name
    }
