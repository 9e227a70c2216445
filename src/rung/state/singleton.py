"""rung.Singleton: periodic jobs that run once per tick across N instances, and a
leadership lease for work only one instance may do.

    singleton = rung.Singleton(queue_url, name="links", lease=10.0)

    @singleton.every(60.0)
    async def expire_links(fencing_token: int) -> None:
        await db.execute("UPDATE links SET disabled = true WHERE expires_at < now() "
                         "AND $1 > (SELECT coalesce(max(token), 0) FROM fences)", fencing_token)

    await singleton.run()                       # in every instance; one of them runs each tick

Ticks are counted on Redis's clock: tick k covers [k·period, (k+1)·period). At each tick
every instance asks one Lua script, which claims the tick key `...:tick:k` with NX, so
exactly one instance wins it, and then takes the job's run lease and the next fencing
token (INCR: strictly increasing, across instances and restarts). The winner renews the
lease every `lease / 3` while the job runs. While a run is in progress the next ticks are
skipped, never run twice at once. If the holder dies, its lease expires within `lease`
seconds and the next tick goes to another instance: with `lease` at most the period, at
most one tick is missed. The fencing token lets the resource refuse a holder whose lease
ran out (a GC pause, a partition): keep the highest token seen and reject lower ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from rung._aio import wait_set
from rung.errors import LeadershipLost

log = logging.getLogger("rung.singleton")

Job = Callable[[int], Awaitable[object]]

# KEYS: lease, fence   ARGV: tick key prefix, period_ms, lease_ms, holder, tick_ttl_s
# -> {claimed 0/1, tick, fencing token, Redis now in ms}
_CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tick = math.floor(now / tonumber(ARGV[2]))
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, tick, 0, now} end
if not redis.call('SET', ARGV[1] .. tick, ARGV[4], 'NX', 'EX', ARGV[5]) then
  return {0, tick, 0, now}
end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[3])
return {1, tick, redis.call('INCR', KEYS[2]), now}
"""

# KEYS: lease   ARGV: holder, lease_ms -> 1 renewed, 0 not ours any more
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: lease   ARGV: holder
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

_WAKE_AFTER = 0.002  # seconds past a tick's start, so every clock agrees it has begun


@dataclass(frozen=True, slots=True)
class _Periodic:
    fn: Job
    period: float


class Singleton:
    """Jobs that run once per tick across instances, and leadership (see the module
    docstring). Keyword-only: `name` namespaces the Redis keys (`rung:singleton:{name}:`);
    `lease` seconds a holder keeps its claim without renewing; `timeout` per Redis call.
    Use the durable Redis (the stack's `queue_url`): the cache Redis may evict a lease."""

    def __init__(
        self, redis_url: str, *, name: str, lease: float = 10.0, timeout: float = 1.0
    ) -> None:
        if not name:
            raise ValueError("name must be non-empty")
        if lease <= 0 or timeout <= 0:
            raise ValueError("lease and timeout must be > 0 seconds")
        self.name = name
        self.lease = lease
        self.holder = secrets.token_hex(8)  # this instance
        self._base = f"rung:singleton:{name}"
        self._redis = Redis.from_url(redis_url, socket_timeout=timeout,
                                     socket_connect_timeout=timeout)  # fmt: skip
        self._claim = self._redis.register_script(_CLAIM)
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)
        self._jobs: dict[str, _Periodic] = {}

    async def close(self) -> None:
        await self._redis.aclose()

    def every(self, seconds: float) -> Callable[[Job], Job]:
        """Register `fn(fencing_token)` to run once per `seconds` tick across instances."""
        if seconds <= 0:
            raise ValueError("the period must be > 0 seconds")

        def register(fn: Job) -> Job:
            name = f"{fn.__module__}.{fn.__qualname__}"
            if name in self._jobs:
                raise ValueError(f"{name} is already registered on {self.name!r}")
            self._jobs[name] = _Periodic(fn, seconds)
            return fn

        return register

    async def run(self) -> None:
        """Run the registered jobs until cancelled (in every instance)."""
        if not self._jobs:
            raise ValueError(f"no jobs registered on {self.name!r}: use @singleton.every()")
        async with asyncio.TaskGroup() as group:
            for name, job in self._jobs.items():
                group.create_task(self._tick_loop(name, job), name=f"rung-singleton-{name}")

    async def _tick_loop(self, name: str, job: _Periodic) -> None:
        period_ms = max(1, round(job.period * 1000))
        lease_key, fence_key = f"{self._base}:{name}:lease", f"{self._base}:fence"
        tick_ttl = max(2, int(job.period * 2) + 1)
        task = asyncio.current_task()
        assert task is not None
        while True:
            if task.cancelling():  # a cancellation swallowed by a library below: stop anyway
                raise asyncio.CancelledError
            asked = time.monotonic()
            try:
                claimed, tick, token, now_ms = await self._claim(
                    keys=[lease_key, fence_key],
                    args=[f"{self._base}:{name}:tick:", period_ms, self._lease_ms, self.holder,
                          tick_ttl],
                )  # fmt: skip
            except RedisError as e:
                log.warning("singleton %s: Redis unreachable, retrying: %r", self.name, e)
                await asyncio.sleep(min(job.period, 1.0))
                continue
            if claimed:
                await self._run_once(name, job, lease_key, int(token))
            next_start = asked + ((tick + 1) * period_ms - now_ms) / 1000 + _WAKE_AFTER
            await asyncio.sleep(max(0.0, next_start - time.monotonic()))

    async def _run_once(self, name: str, job: _Periodic, lease_key: str, token: int) -> None:
        async with self._held(lease_key):
            try:
                await job.fn(token)
            except Exception:
                log.exception("singleton job %s failed (fencing token %d)", name, token)

    @contextlib.asynccontextmanager
    async def leadership(self) -> AsyncIterator[int]:
        """Wait until this instance leads `name`, then hold the lead (renewed) for the
        block; yields a fencing token. If the lead is lost (the lease could not be renewed
        in time), the block is cancelled and `LeadershipLost` raised.

        >>> async with singleton.leadership() as token:
        ...     await consume_the_feed(token)
        """
        key = f"{self._base}:leader"
        while not await self._redis.set(  # noqa: ASYNC110 (the lease is in Redis)
            key, self.holder, nx=True, px=self._lease_ms
        ):
            await asyncio.sleep(self.lease / 3)
        token = int(await self._redis.incr(f"{self._base}:fence"))
        task = asyncio.current_task()
        assert task is not None
        async with self._held(key, task) as keeper:
            try:
                yield token
            except asyncio.CancelledError:
                if keeper.done() and not keeper.cancelled() and keeper.exception() is not None:
                    task.uncancel()
                    raise LeadershipLost(
                        f"lost the lead of {self.name!r} (token {token})"
                    ) from None
                raise

    @contextlib.asynccontextmanager
    async def _held(
        self, key: str, owner: asyncio.Task[object] | None = None
    ) -> AsyncIterator[asyncio.Task[None]]:
        """Keep the lease `key` (already ours) renewed for the block, then release it.
        Yields the renewing task: it fails with LeadershipLost if the lease is lost."""
        done = asyncio.Event()
        keeper = asyncio.create_task(self._keep(key, done, owner))
        try:
            yield keeper
        finally:
            done.set()  # the keeper stops between renewals, never inside a Redis call
            with contextlib.suppress(LeadershipLost):
                await keeper
            with contextlib.suppress(RedisError):
                await self._release(keys=[key], args=[self.holder])

    async def _keep(
        self, key: str, done: asyncio.Event, owner: asyncio.Task[object] | None = None
    ) -> None:
        """Renew the lease every `lease / 3` until `done`. When it is gone, or cannot be
        renewed before it would expire, cancel `owner` (if any) and raise LeadershipLost."""
        renewed = time.monotonic()
        while True:
            if await wait_set(done, self.lease / 3):
                return
            try:
                if await self._renew(keys=[key], args=[self.holder, self._lease_ms]):
                    renewed = time.monotonic()
                    continue
            except RedisError as e:
                if time.monotonic() - renewed < self.lease:
                    log.warning("singleton %s: renewal failed, retrying: %r", self.name, e)
                    continue
            log.warning("singleton %s: the lease was lost", self.name)
            if owner is not None:
                owner.cancel()
            raise LeadershipLost(f"the lease of {self.name!r} was lost")

    @property
    def _lease_ms(self) -> int:
        return max(1, round(self.lease * 1000))
