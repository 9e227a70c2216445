"""The one way rung talks to Redis: a client factory, a total bound on every call, one map
from redis-py's errors to rung's, and the Lua helpers that several rungs share.

    store = Store(url, timeout=1.0, unavailable=CacheUnavailable, rejected=CacheError)
    raw = await store.run(lambda r: r.get(key), idempotent=True)

Each call is bounded by `timeout` in total, by a deadline (`rung._aio.deadline`, which holds
even where redis-py swallows a cancellation): waiting for a connection slot, connecting,
sending, reading, and the one retry where it is safe. Socket timeouts
alone bound each connect and each read separately, and they add up (a hung Redis took twice
the timeout). redis-py's own retry is off: it would run a non-idempotent script a second
time (a queue put was enqueued twice) and stretch the bound. A call marked `idempotent` is
retried once, at once, inside the same bound, when its connection broke (a pooled
connection goes stale across a Redis restart). When the bound cancels a call, redis-py
drops that connection rather than reuse it mid-reply.

Errors: a Redis that cannot serve (unreachable, hung, loading, read-only, out of memory,
failing to persist) raises `unavailable`; a command Redis refuses because of what it was
given (an out-of-range TTL, a wrong type at a key, a script's error) raises `rejected`, so a
caller's bad input is never taken for an outage (and never opens a circuit breaker).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from rung._aio import deadline
from rung.errors import RungError

T = TypeVar("T")

# Reply errors that say the server cannot serve now, whatever the command was (redis-py has
# classes for some; the others keep their code at the start of the message).
_CANNOT_SERVE = (ReadOnlyError, OutOfMemoryError, TryAgainError)
_CANNOT_SERVE_CODES = frozenset({"BUSY", "MASTERDOWN", "MISCONF", "NOREPLICAS"})


def client(url: str, *, timeout: float, max_connections: int = 50) -> Redis:
    """A redis-py client that never retries by itself; `timeout` also caps each socket
    connect and read, so a stuck connection is dropped even outside `Store.run`."""
    return Redis.from_url(
        url,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        max_connections=max_connections,
    )


class Store:
    """One Redis a rung uses, every call bounded and mapped (see the module docstring).
    At most `max_connections` calls are in flight; waiting for a turn counts in the bound."""

    def __init__(self, url: str, *, timeout: float, unavailable: type[RungError],
                 rejected: type[RungError], max_connections: int = 50) -> None:  # fmt: skip
        self.url = url
        self.timeout = timeout
        self.redis = client(url, timeout=timeout, max_connections=max_connections)
        self._unavailable = unavailable
        self._rejected = rejected
        self._slots = asyncio.Semaphore(max_connections)

    async def run(self, call: Callable[[Redis], Awaitable[T]], *, idempotent: bool = False) -> T:
        """`await call(redis)` within `timeout`, its errors mapped."""
        try:
            async with deadline(self.timeout), self._slots:
                try:
                    return await call(self.redis)
                except RedisConnectionError:
                    if not idempotent:
                        raise
                    return await call(self.redis)
        except TimeoutError as e:
            raise self._unavailable(f"Redis gave no answer within {self.timeout}s") from e
        except RedisError as e:
            raise self.error(e) from e

    def error(self, e: RedisError) -> RungError:
        """The rung error for a redis-py error (see the module docstring)."""
        refused = isinstance(e, ResponseError) and not isinstance(e, _CANNOT_SERVE)
        if refused and str(e).partition(" ")[0] not in _CANNOT_SERVE_CODES:  # not BUSYGROUP
            return self._rejected(f"Redis refused the command: {e}")
        if isinstance(e, RedisTimeoutError):
            return self._unavailable(f"Redis gave no answer within {self.timeout}s")
        return self._unavailable(f"Redis cannot be reached: {e}")

    async def open(self) -> None:
        """Connect now rather than on the first call. A Redis that is down is no error
        here: the calls fail fast (`unavailable`) until it is back."""
        with contextlib.suppress(RungError):
            await self.run(lambda r: r.ping(), idempotent=True)

    async def close(self) -> None:
        await self.redis.aclose()


# --- Lua that several rungs share -----------------------------------------------------------

# KEYS[1] a lease; ARGV[1] the owner's token. Deletes the lease only if the owner still has it.
RELEASE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1] a lease; ARGV[1] the owner's token, ARGV[2] the new lifetime in ms. 1 if renewed.
RENEW_IF_OWNER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""
