"""Types shared across rung, for annotations in your code.

    async def find_link(db: rung.Executor, slug: str) -> asyncpg.Record | None:
        return await db.fetchrow("SELECT * FROM links WHERE slug = $1", slug)

`rung.Database`, an asyncpg connection and an asyncpg pool connection all fit `Executor`, so a
repository function runs on the routed Database, or on the connection of a transaction.

And what each `stats()` returns, as TypedDicts:

    def pool_pressure(stats: rung.DatabaseStats) -> int:
        return sum(node["pool_waiting"] for node in stats.values())
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable


@runtime_checkable
class Executor(Protocol):
    """Something that runs SQL: fetch/fetchrow/fetchval/execute/executemany/transaction."""

    async def execute(self, query: str, /, *args: Any, timeout: float | None = None) -> str: ...

    async def executemany(
        self, query: str, args: Iterable[Sequence[Any]], /, *, timeout: float | None = None
    ) -> Any: ...

    async def fetch(self, query: str, /, *args: Any, timeout: float | None = None) -> list[Any]: ...

    async def fetchrow(self, query: str, /, *args: Any, timeout: float | None = None) -> Any: ...

    async def fetchval(
        self, query: str, /, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Any: ...

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...


class NodeStats(TypedDict):
    """One database node in `Database.stats()`."""

    role: str  # "primary" or "replica"
    healthy: bool
    pooler: bool  # behind PgBouncer (statement cache off)
    queries: int
    errors: int  # connection-level failures; a statement's own error is not one
    timeouts: int  # statements that ran past their timeout here
    pool_size: int  # connections the pool holds now
    pool_max_size: int  # what it may grow to (the Database's max_size)
    pool_in_use: int
    pool_waiting: int  # acquires waiting for a connection now
    outstanding: int  # operations in flight
    replay_lag_s: float | None  # a replica's, at the last health poll (None: not polled yet)
    replay_lag_bytes: int | None
    replay_stalled: bool  # behind at two polls in a row without replaying a byte
    causal_waits: int  # reads that waited for this replica to replay their token
    checked_s_ago: float | None  # since the last successful health poll


DatabaseStats = dict[str, NodeStats]  # node name ("primary", "replica1", ...) -> its stats


class CacheStats(TypedDict):
    """`Cache.stats()`: what this Cache object did, counted in-process."""

    hits: int  # calls answered from the cache (Redis or the near cache)
    local_hits: int  # of those, answered by the near cache without Redis
    misses: int  # calls that found no fresh value
    hit_rate: float  # hits / (hits + misses), 0.0 before any call
    coalesced: int  # misses served by another caller's load (in-process or not)
    loads: int  # loader calls, early refreshes included
    load_seconds: float  # time spent in loaders
    refreshes: int  # early refreshes started (XFetch)
    stale_fills_rejected: int  # fills voided by an invalidation during their load
    errors: int  # Redis operations that failed (the caller got the loader's value)
    breaker: Literal["closed", "open"]
    near: Literal["off", "live", "dark"]


class QueueStats(TypedDict):
    """`Queue.stats()` (and every `Broker.stats()`)."""

    depth: int  # accepted, not yet acknowledged
    pending: int  # handed to a drain, not yet acknowledged
    lag: int  # not yet handed out
    oldest_age_s: float  # age of the oldest unacknowledged event
    dead: int  # dead letters


class DrainStats(TypedDict):
    """`Drain.stats()`: what this drain did since it was made."""

    written: int  # entries the sink took (rows written, or already there)
    batches: int
    failed: int  # entry failures (each retry counts)
    dead: int  # entries moved to the dead letters
    batch_failures: int  # writes that failed as a whole (each try counts)
    outages: int  # of those, the ones waited out (the database could not take them)
    splits: int  # batches split in halves to isolate the rows that fail
    reclaimed: int  # entries taken over after `claim_idle`
    rate: float | None  # the pacer's rows/s (None: as fast as the sink goes)
