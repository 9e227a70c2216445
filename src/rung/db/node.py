"""One PostgreSQL node as rung.Database sees it: its pool, its health, its counters.

Each node has its own asyncpg pool. A node reached through a connection pooler (PgBouncer
in transaction mode) runs with asyncpg's statement cache off, because named prepared
statements do not survive the pooler handing the next statement to another server
connection; the pooler is detected at open by `inet_server_port()` differing from the port
connected to (a Unix socket, where the port is unknown, counts as pooled: the safe side).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

import asyncpg

from rung.db import lsn
from rung.errors import PoolTimeout

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]  # a pooled acquire's type
else:
    Connection = asyncpg.Connection

# What asking a node anything can raise when it is down, refusing or shutting down; the
# health checks (open, the monitor) treat each as "not serving now".
UNREACHABLE = (
    OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)  # fmt: skip

# SQLSTATE classes that mean "this connection or server is gone", not "this statement failed".
_CONNECTION_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def is_connection_error(exc: BaseException) -> bool:
    """True when `exc` says the node cannot be reached, so a read may be tried elsewhere."""
    if isinstance(exc, OSError | asyncpg.InterfaceError | asyncpg.ConnectionDoesNotExistError):
        return True
    if isinstance(exc, asyncpg.InternalClientError):
        # asyncpg's protocol lost step with the server, as when a shutdown's FATAL arrives
        # between statements (MagicStack/asyncpg#1069): this connection is unusable.
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        return state.startswith(_CONNECTION_SQLSTATES)
    return False


@dataclass(eq=False)
class _Waiter:
    task: asyncio.Task[Any]
    deadline: float  # loop time
    expired: bool = False


class Node:
    """A PostgreSQL server: the primary or a replica."""

    def __init__(self, name: str, url: str, *, role: str, min_size: int, max_size: int,
                 acquire_timeout: float) -> None:  # fmt: skip
        self.name = name
        self.url = url
        self.role = role
        self.min_size = min_size
        self.max_size = max_size
        self.acquire_timeout = acquire_timeout
        self.pool: asyncpg.Pool | None = None
        self.pooled = True  # behind PgBouncer (statement cache off) until shown otherwise
        self.healthy = role == "primary"  # replicas earn it from the monitor's first poll
        self.outstanding = 0  # operations in flight: how replicas are balanced
        self._waiters: set[_Waiter] = set()  # acquires waiting for a free connection
        self._watchdog: asyncio.Task[None] | None = None
        self.queries = 0
        self.errors = 0
        self.replay_lsn: int = 0  # replicas: last replay position seen
        self.lag_s: float | None = None
        self.lag_bytes: int | None = None
        self.checked_at = 0.0  # monotonic time of the last successful health poll
        self._refresh: asyncio.Task[int] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Detect a pooler and create the pool; a node that is down gets an empty pool that
        connects once it is back."""
        try:
            self.pooled = await self._behind_pooler()
        except UNREACHABLE:
            self.healthy = False
        self.pool = await self._create_pool(self.min_size if self.healthy else 0)

    async def _create_pool(self, min_size: int) -> asyncpg.Pool:
        pool = asyncpg.create_pool(
            self.url,
            min_size=min_size,
            max_size=self.max_size,
            timeout=self.acquire_timeout,  # connect timeout
            statement_cache_size=0 if self.pooled else 100,
        )
        try:
            return await pool
        except UNREACHABLE:
            self.healthy = False
            if min_size == 0:
                raise
            return await self._create_pool(0)

    async def _behind_pooler(self) -> bool:
        conn = await asyncpg.connect(self.url, timeout=self.acquire_timeout, statement_cache_size=0)
        try:
            server_port = await conn.fetchval("SELECT inet_server_port()")
        finally:
            await conn.close()
        return server_port is None or server_port != (urlsplit(self.url).port or 5432)

    async def close(self) -> None:
        for task in (self._refresh, self._watchdog):
            if task is not None:
                task.cancel()
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    # --- use ---------------------------------------------------------------------------------

    async def acquire(self) -> Connection:
        """A pooled connection, waiting at most `acquire_timeout` for one (then PoolTimeout).

        With an idle connection nothing waits. A waiting acquire is bounded by a watchdog
        that ticks only while someone waits, rather than a timer per call: under contention
        per-call timers cost a fifth of the throughput."""
        pool = self.pool
        assert pool is not None, "Database is not open: `async with db:` or `await db.open()`"
        if pool.get_idle_size() > 0:
            return await pool.acquire()
        task = asyncio.current_task()
        assert task is not None
        waiter = _Waiter(task, asyncio.get_running_loop().time() + self.acquire_timeout)
        self._waiters.add(waiter)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch(), name=f"rung-{self.name}-acquire")
        try:
            return await pool.acquire()
        except asyncio.CancelledError:
            if not waiter.expired:
                raise
            task.uncancel()
            raise PoolTimeout(
                f"{self.name}: no free connection within {self.acquire_timeout}s "
                f"(max_size={self.max_size})"
            ) from None
        finally:
            self._waiters.discard(waiter)

    @property
    def waiting(self) -> int:
        """Acquires waiting for a free connection now."""
        return len(self._waiters)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        tick = min(0.05, self.acquire_timeout / 4)
        while self._waiters:
            await asyncio.sleep(tick)
            now = loop.time()
            for waiter in list(self._waiters):
                if now >= waiter.deadline and not waiter.expired:
                    waiter.expired = True
                    waiter.task.cancel()

    async def call(self, method: str, query: str, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:  # fmt: skip
        """`conn.<method>(query, *args)` on a pooled connection: the hot path of a read."""
        conn = await self.acquire()
        self.outstanding += 1
        try:
            result = await getattr(conn, method)(query, *args, **kwargs)
        except BaseException as e:
            await self._release(conn, e)
            raise
        await self._release(conn, None)
        return result

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection for a block (see `acquire`)."""
        conn = await self.acquire()
        self.outstanding += 1
        try:
            yield conn
        except BaseException as e:
            await self._release(conn, e)
            raise
        await self._release(conn, None)

    async def _release(self, conn: Connection, failed: BaseException | None) -> None:
        """Return `conn` to the pool; never raises. After a connection error it is dropped,
        not reset. A reset can fail when the server's FATAL (a shutdown) arrives after the
        operation: asyncpg then discards the connection itself, and the operation's outcome,
        a result or `failed`, is what the caller must see, not the reset's error."""
        self.outstanding -= 1
        pool = self.pool
        if pool is None or (failed is not None and is_connection_error(failed)):
            conn.terminate()  # closed meanwhile, or broken
        if pool is not None:
            with contextlib.suppress(Exception):
                await pool.release(conn)

    def mark_down(self) -> None:
        """A connection error was seen: stop choosing this node until the monitor sees it."""
        if self.role == "replica":
            self.healthy = False

    # --- replay position ---------------------------------------------------------------------

    def note_replay(self, position: int) -> None:
        self.replay_lsn = max(self.replay_lsn, position)

    def ask_replay(self) -> asyncio.Task[int]:
        """Ask this replica its replay position now; concurrent askers share one query.
        The task never fails: on an error it keeps the last known position."""
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.create_task(self._ask_replay())
        return self._refresh

    async def _ask_replay(self) -> int:
        try:
            async with self.connection() as conn:
                text = await conn.fetchval("SELECT pg_last_wal_replay_lsn()::text")
        except Exception as e:  # the caller falls back to the primary; the monitor decides
            if is_connection_error(e):
                self.mark_down()
            return self.replay_lsn
        if text is not None:
            self.note_replay(lsn.parse(text))
        return self.replay_lsn

    def stats(self) -> dict[str, Any]:
        pool = self.pool
        size = pool.get_size() if pool is not None else 0
        idle = pool.get_idle_size() if pool is not None else 0
        return {
            "role": self.role,
            "healthy": self.healthy,
            "pooler": self.pooled,
            "queries": self.queries,
            "errors": self.errors,
            "pool_size": size,
            "pool_in_use": size - idle,
            "pool_waiting": self.waiting,
            "outstanding": self.outstanding,
            "replay_lag_s": self.lag_s,
            "replay_lag_bytes": self.lag_bytes,
            "checked_s_ago": round(time.monotonic() - self.checked_at, 3)
            if self.checked_at
            else None,
        }
