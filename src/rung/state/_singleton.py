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
most one tick is missed.

A holder also loses its lease by standing still: a process paused (SIGSTOP, a VM pause) or
an event loop blocked past the lease's deadline. The deadline is a timer on the loop's
monotonic clock, `lease` seconds after the last renewal was sent, so on resuming the timer
is already due: the run (or the `leadership()` block) is cancelled at its next await, with
`LeadershipLost`, without waiting for a Redis reply. Code between the resume and that
await still runs, so the fencing token stays the guarantee: the resource keeps the highest
token it has seen and refuses lower ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from rung._aio import wait_set
from rung._options import seconds
from rung._redis import RELEASE_IF_OWNER, RENEW_IF_OWNER, Store
from rung.errors import LeadershipLost, RungError

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

# KEYS: lease, fence   ARGV: holder, lease_ms -> the next fencing token, or 0 while another
# holder has the lease. Run twice (a retry), it hands the same holder a higher token.
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('INCR', KEYS[2])
"""

_WAKE_AFTER = 0.002  # seconds past a tick's start, so every clock agrees it has begun
_MAX_PERIOD = 366 * 86_400.0


class _Unreachable(RungError):
    """The Singleton's Redis did not answer in time. Never reaches the caller: a claim or
    an acquire is retried, and a lease that cannot be renewed runs out."""


@dataclass(frozen=True, slots=True)
class _Periodic:
    fn: Job
    period: float


class Singleton:
    """Jobs that run once per tick across instances, and leadership (see the module
    docstring). Keyword-only: `name` namespaces the Redis keys (`rung:singleton:{name}:`);
    `lease` seconds a holder keeps its claim without renewing; `timeout` bounds each Redis
    call in total. Use the durable Redis (the stack's `queue_url`): the cache Redis may
    evict a lease."""

    def __init__(
        self, redis_url: str, *, name: str, lease: float = 10.0, timeout: float = 1.0
    ) -> None:
        if not name:
            raise ValueError("name must be non-empty")
        self.name = name
        self.lease = seconds("lease", lease, positive=True)
        if self.lease < 0.001:
            raise ValueError(
                f"lease must be at least 0.001 seconds (Redis counts ms), not {lease!r}"
            )
        self.holder = secrets.token_hex(8)  # this instance
        self._base = f"rung:singleton:{name}"
        self._store = Store(redis_url, timeout=seconds("timeout", timeout, positive=True),
                            unavailable=_Unreachable, rejected=RungError)  # fmt: skip
        redis = self._store.redis
        self._claim = redis.register_script(_CLAIM)
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(RENEW_IF_OWNER)
        self._release = redis.register_script(RELEASE_IF_OWNER)
        self._jobs: dict[str, _Periodic] = {}

    async def open(self) -> None:
        """Connect now rather than on the first call (a Redis that is down is no error
        here)."""
        await self._store.open()

    async def close(self) -> None:
        await self._store.close()

    async def __aenter__(self) -> Singleton:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def every(self, seconds: float) -> Callable[[Job], Job]:
        """Register `fn(fencing_token)` to run once per `seconds` tick across instances."""
        period = _period(seconds)

        def register(fn: Job) -> Job:
            name = f"{fn.__module__}.{fn.__qualname__}"
            if name in self._jobs:
                raise ValueError(f"{name} is already registered on {self.name!r}")
            self._jobs[name] = _Periodic(fn, period)
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
        args: list[str | int] = [f"{self._base}:{name}:tick:", period_ms, self._lease_ms,
                                 self.holder, max(2, int(job.period * 2) + 1)]  # fmt: skip
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        while True:
            if task.cancelling():  # a cancellation swallowed by a library below: stop anyway
                raise asyncio.CancelledError
            asked = loop.time()
            try:
                claimed, tick, token, now_ms = await self._store.run(
                    lambda r: self._claim(keys=[lease_key, fence_key], args=args, client=r)
                )
            except _Unreachable as e:
                log.warning("singleton %s: Redis unreachable, retrying: %s", self.name, e)
                await asyncio.sleep(min(job.period, 1.0))
                continue
            if claimed:
                await self._run_once(name, job, lease_key, int(token), asked + self.lease)
            next_start = asked + ((tick + 1) * period_ms - now_ms) / 1000 + _WAKE_AFTER
            await asyncio.sleep(max(0.0, next_start - loop.time()))

    async def _run_once(
        self, name: str, job: _Periodic, lease_key: str, token: int, deadline: float
    ) -> None:
        try:
            async with self._held(lease_key, self.holder, deadline, token):
                try:
                    await job.fn(token)
                except Exception:
                    log.exception("singleton job %s failed (fencing token %d)", name, token)
        except LeadershipLost as e:
            log.warning("singleton job %s was cancelled: LeadershipLost: %s", name, e)

    @contextlib.asynccontextmanager
    async def leadership(self) -> AsyncIterator[int]:
        """Wait until this instance leads `name`, then hold the lead (renewed) for the
        block; yields a fencing token. If the lead is lost (the lease could not be renewed
        in time, or this process stood still past it), the block is cancelled at its next
        await and `LeadershipLost` raised.

        >>> async with singleton.leadership() as token:
        ...     await consume_the_feed(token)
        """
        key, fence = f"{self._base}:leader", f"{self._base}:fence"
        holder = f"{self.holder}.{secrets.token_hex(4)}"  # this block, not this instance
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            try:
                token = int(await self._store.run(
                    lambda r: self._acquire(keys=[key, fence], args=[holder, self._lease_ms],
                                            client=r),
                    idempotent=True,
                ))  # fmt: skip
            except _Unreachable as e:
                log.warning("singleton %s: Redis unreachable, retrying: %s", self.name, e)
                token = 0
            if token:
                break
            await asyncio.sleep(self.lease / 3)
        async with self._held(key, holder, asked + self.lease, token):
            yield token

    @contextlib.asynccontextmanager
    async def _held(
        self, key: str, holder: str, deadline: float, token: int
    ) -> AsyncIterator[None]:
        """Hold the lease `key` (already `holder`'s until `deadline`, loop time) for the
        block, then release it. If it is lost, the block is cancelled and LeadershipLost
        raised instead of the CancelledError."""
        owner = asyncio.current_task()
        assert owner is not None
        keeper = _Keeper(self, key, holder, deadline, owner)
        try:
            yield
        except asyncio.CancelledError:
            if keeper.lost is None or owner.uncancel() > 0:
                raise  # cancelled by someone else (too)
            raise LeadershipLost(f"{keeper.lost} (fencing token {token})") from None
        else:
            if keeper.lost is not None:  # the block swallowed the CancelledError
                owner.uncancel()
                raise LeadershipLost(f"{keeper.lost} (fencing token {token})")
        finally:
            await keeper.stop()
            if keeper.lost is None:
                try:
                    await self._store.run(
                        lambda r: self._release(keys=[key], args=[holder], client=r),
                        idempotent=True,
                    )
                except _Unreachable as e:  # it runs out within `lease` by itself
                    log.warning("singleton %s: could not release the lease: %s", self.name, e)

    @property
    def _lease_ms(self) -> int:
        return max(1, round(self.lease * 1000))


class _Keeper:
    """Keeps a lease while `owner` works: renews it every `lease / 3`, and cancels `owner`
    the moment it is lost. Losing it is a timer at the lease's deadline, not a Redis reply:
    after a pause the timer is overdue and fires on the loop's first turn."""

    def __init__(
        self, singleton: Singleton, key: str, holder: str, deadline: float,
        owner: asyncio.Task[object],
    ) -> None:  # fmt: skip
        self.lost: str | None = None  # why, once lost
        self._singleton = singleton
        self._key = key
        self._holder = holder
        self._owner = owner
        self._loop = asyncio.get_running_loop()
        self._expiry = self._loop.call_at(deadline, self._lose, "was not renewed in time")
        self._stopped = asyncio.Event()
        self._task = asyncio.create_task(self._renew(), name=f"rung-lease-{key}")

    def _lose(self, why: str) -> None:
        if self.lost is not None or self._stopped.is_set():
            return
        self.lost = f"the lease of {self._singleton.name!r} {why}"
        log.warning("singleton %s: %s", self._singleton.name, self.lost)
        self._stopped.set()
        self._owner.cancel(f"LeadershipLost: {self.lost}")

    async def _renew(self) -> None:
        s = self._singleton
        while not await wait_set(self._stopped, s.lease / 3):
            sent = self._loop.time()
            try:
                renewed = await s._store.run(
                    lambda r: s._renew(keys=[self._key], args=[self._holder, s._lease_ms],
                                       client=r),
                    idempotent=True,
                )  # fmt: skip
            except _Unreachable as e:  # try again; the expiry timer decides when it is lost
                log.warning("singleton %s: renewal failed, retrying: %s", s.name, e)
                continue
            except RungError as e:
                self._lose(f"could not be renewed: {e}")
                return
            if not renewed:
                self._lose("is no longer ours (it expired, and may be held by another instance)")
                return
            if not self._stopped.is_set():
                self._expiry.cancel()  # renewed at `sent` or later: good for `lease` from then
                self._expiry = self._loop.call_at(sent + s.lease, self._lose,
                                                  "was not renewed in time")  # fmt: skip

    async def stop(self) -> None:
        """Stop renewing, at once; call it before the first await after the block."""
        self._expiry.cancel()
        self._stopped.set()
        self._task.cancel()  # a renewal in flight is dropped: redis-py closes its connection
        await asyncio.wait([self._task])  # never swallows a cancellation of the caller
        if not self._task.cancelled() and (error := self._task.exception()) is not None:
            raise error


def _period(value: float) -> float:
    period = seconds("every(seconds)", value, positive=True, most=_MAX_PERIOD)
    if period < 0.001:
        raise ValueError(f"every(seconds) must be at least 0.001 (Redis counts ms), not {value!r}")
    return period
