"""One PostgreSQL node as rung.Database sees it: its pool, its health, its counters.

Each node has its own asyncpg pool. A node reached through a connection pooler (PgBouncer
in transaction mode) runs with asyncpg's statement cache off, because named prepared
statements do not survive the pooler handing the next statement to another server
connection; the pooler is detected at open by `inet_server_port()` differing from the port
connected to (a Unix socket, where the port is unknown, counts as pooled: the safe side).

`Node.mapped` is the one place that maps the driver's errors: it wraps an acquire and each
driver call, never the caller's own block. A node's state changes only through its own
methods: the Database reports what its calls saw, the Monitor what its polls saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

import asyncpg

from rung.db import lsn
from rung.errors import DatabaseError, PoolTimeout, RungError

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]  # a pooled acquire's type
else:
    Connection = asyncpg.Connection

T = TypeVar("T")
Op: TypeAlias = Callable[[Connection], Awaitable[T]]  # one driver call on a connection

# What connecting to or polling a node can raise when it is down, refusing or shutting
# down: the health checks (open, the monitor) and an acquire treat each as "not serving".
UNREACHABLE = (
    OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)  # fmt: skip

_REPLAY_POSITION = "SELECT pg_last_wal_replay_lsn()::text"
INSERT_POSITION = "SELECT pg_current_wal_insert_lsn()::text"
_SLOW_FOR = 5.0  # seconds a replica that let a statement time out is passed over

# SQLSTATEs that mean "this connection or server is gone", not "this statement failed".
_CONNECTION_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def is_connection_error(exc: BaseException, conn: Connection | None = None) -> bool:
    """True when `exc`, raised by the driver, says the node cannot be reached: while
    connecting (`conn` None) any network or server refusal; on an open connection only what
    the driver says is broken. A client-side error (a wrong argument count, a bad type) and
    a statement's own error are not, so they never move a read or mark a node down."""
    if conn is None:
        return isinstance(exc, UNREACHABLE)
    if _closed(conn):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return (getattr(exc, "sqlstate", "") or "").startswith(_CONNECTION_SQLSTATES)
    # asyncpg's protocol lost step with the server, as when a shutdown's FATAL arrives
    # between statements (MagicStack/asyncpg#1069): this connection is unusable. A stale
    # schema cache is the statement's problem, not the connection's.
    return isinstance(exc, asyncpg.InternalClientError) and not isinstance(
        exc, asyncpg.exceptions.OutdatedSchemaCacheError
    )


def _closed(conn: Connection) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # the pool took it back already, as it does when the
        return True  # server closed it mid-operation


def drop(conn: Connection) -> None:
    """Close `conn` at once, without a goodbye to a server that may be gone or hung."""
    with contextlib.suppress(asyncpg.InterfaceError):  # the pool took it back already
        conn.terminate()


class Unreachable(Exception):
    """Internal: `node` failed at the connection level; the Database decides what the
    caller sees (a retry elsewhere, `PrimaryUnavailable`, `NoHealthyNode`)."""

    def __init__(self, node: Node, cause: BaseException) -> None:
        super().__init__(f"{node.name}: {cause!r}")
        self.node = node


class TimedOut(Unreachable):
    """Internal: a statement on `node` ran past its timeout (a hung server or pooler, a
    replica whose backends are blocked): a read moves elsewhere, a write is in doubt."""


@dataclass(eq=False)
class _Waiter:
    task: asyncio.Task[Any]
    deadline: float  # loop time
    expired: bool = False


SERVER_SETTINGS = {"client_encoding": "UTF8"}


async def _no_reset(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Behind PgBouncer in transaction mode a connection released to the pool gets no
    session reset: it would run on whichever server connection is free, not the one the
    session's state is on, and cost four statements per transaction (asyncpg's
    `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`)."""


class Node:
    """A PostgreSQL server: the primary or a replica."""

    def __init__(self, name: str, url: str, *, role: str, min_size: int, max_size: int,
                 acquire_timeout: float, max_queries: int = 50_000) -> None:  # fmt: skip
        self.name = name
        self.url = url
        self.role = role
        self.min_size = min_size
        self.max_size = max_size
        self.acquire_timeout = acquire_timeout
        self.max_queries = max_queries
        self.pool: asyncpg.Pool | None = None
        self.pooled = True  # behind PgBouncer (statement cache off) until shown otherwise
        self.healthy = role == "primary"  # replicas earn it from the monitor's first poll
        self.outstanding = 0  # operations in flight: how replicas are balanced
        self._waiters: set[_Waiter] = set()  # acquires waiting for a free connection
        self._watchdog: asyncio.Task[None] | None = None
        self.queries = 0
        self.errors = 0  # connection-level failures; a statement's own error is not one
        self.timeouts = 0  # statements that ran past their timeout here
        self._slow_until = 0.0  # monotonic time: a replica that timed out sits out until then
        self.causal_waits = 0  # reads that waited for this replica to replay their token
        # The WAL position last seen: a replica's replay position; the primary's insert
        # position, from the monitor and from this process's own writes.
        self.position: int = 0
        self.lag_s: float | None = None
        self.lag_bytes: int | None = None
        self.stalled = False  # behind at two polls in a row without replaying a byte
        self.replay_rate = 0.0  # bytes/s replayed between the last two polls
        self.checked_at = 0.0  # monotonic time of the last successful health poll
        self._polled_lsn = 0
        self._refresh: asyncio.Task[bool] | None = None  # the latest position query
        self._refresh_sent = 0.0  # loop time it was started
        self._asks: set[asyncio.Task[bool]] = set()  # every one still running

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
            max_queries=self.max_queries,
            timeout=self.acquire_timeout,  # connect timeout
            statement_cache_size=0 if self.pooled else 100,
            # asyncpg asks for 'utf-8' at startup; PgBouncer compares that with the server's
            # 'UTF8' and sends a SET client_encoding before every transaction it hands on.
            server_settings=SERVER_SETTINGS,
            reset=_no_reset if self.pooled else None,
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
        """Stop this node's tasks (awaited) and close its pool."""
        tasks = [*self._asks, *([self._watchdog] if self._watchdog is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    # --- the error boundary ------------------------------------------------------------------

    @contextlib.contextmanager
    def mapped(self, conn: Connection | None) -> Iterator[None]:
        """Around an acquire (`conn` None) or one driver call on `conn`: a connection-level
        failure counts against this node, drops the connection, and becomes `Unreachable`
        (`TimedOut` for a statement past its timeout); anything else (rung's own errors, a
        statement's error, the caller's mistake) passes unchanged."""
        try:
            yield
        except Exception as e:
            if isinstance(e, RungError):
                raise
            if conn is not None and isinstance(e, TimeoutError):
                # The statement's timeout: a cancel may still be in flight to a server that
                # may be hung, so the connection is dropped, never waited on.
                drop(conn)
                self.timed_out()
                raise TimedOut(self, e) from e
            if not is_connection_error(e, conn):
                raise
            if conn is not None:
                drop(conn)
            self.failed()
            raise Unreachable(self, e) from e

    # --- use ---------------------------------------------------------------------------------

    async def acquire(self) -> Connection:
        """A pooled connection, waiting at most `acquire_timeout` for one (then PoolTimeout).

        With an idle connection nothing waits. A waiting acquire is bounded by a watchdog
        that ticks only while someone waits, rather than a timer per call: under contention
        per-call timers cost a fifth of the throughput."""
        pool = self.pool
        if pool is None:
            raise DatabaseError("the Database is not open: `async with db:` or `await db.open()`")
        with self.mapped(None):
            if pool.get_idle_size() > 0:
                return await pool.acquire()
            return await self._acquire_waiting(pool)

    async def _acquire_waiting(self, pool: asyncpg.Pool) -> Connection:
        task = asyncio.current_task()
        if task is None:
            raise DatabaseError("rung.Database is used from inside an asyncio task")
        entered = task.cancelling()
        waiter = _Waiter(task, asyncio.get_running_loop().time() + self.acquire_timeout)
        self._waiters.add(waiter)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch(), name=f"rung-{self.name}-acquire")
        try:
            return await pool.acquire()
        except asyncio.CancelledError:
            if not waiter.expired:
                raise
            if task.uncancel() > entered:  # a cancellation from outside came too: it wins
                raise
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

    async def call(self, op: Op[T], *, count: bool = True) -> T:
        """`op(conn)` on a pooled connection, inside the boundary: the hot path of a read."""
        conn = await self.acquire()
        self.outstanding += 1
        try:
            with self.mapped(conn):
                result = await op(conn)
        finally:
            await self._release(conn)
        if count:
            self.succeeded()
        return result

    @contextlib.asynccontextmanager
    async def held(self, conn: Connection) -> AsyncIterator[Connection]:
        """Hold `conn` (from `acquire`) for the caller's block, then release it. What the
        block raises passes unchanged; the connection is dropped only when the driver says
        it is broken."""
        self.outstanding += 1
        try:
            yield conn
        except BaseException as e:
            # A rung error here was mapped (and counted) by the call that raised it.
            if not isinstance(e, RungError | Unreachable) and is_connection_error(e, conn):
                drop(conn)
                self.failed()
            raise
        finally:
            await self._release(conn)

    async def _release(self, conn: Connection) -> None:
        """Return `conn` to the pool; never raises. A broken connection was terminated
        already; a reset that fails (a shutdown's FATAL arriving after the operation) makes
        asyncpg discard the connection itself, and the operation's outcome is what the
        caller must see, not the reset's error."""
        self.outstanding -= 1
        pool = self.pool
        if pool is None:  # closed meanwhile
            drop(conn)
            return
        with contextlib.suppress(Exception):  # bounded: the reset of a hung server's connection
            await pool.release(conn, timeout=self.acquire_timeout)

    # --- what calls and polls saw ------------------------------------------------------------

    def succeeded(self) -> None:
        """A statement ran here. A primary that answers is healthy again."""
        self.queries += 1
        if self.role == "primary":
            self.healthy = True

    def failed(self) -> None:
        """A connection-level failure: count it, and choose this node no more until a poll
        (or, for the primary, a call) shows it serving again."""
        self.errors += 1
        self.healthy = False

    def timed_out(self) -> None:
        """A statement ran past its timeout here."""
        self.timeouts += 1

    def sit_out(self) -> None:
        """A read ran past the Database's own statement_timeout here: a replica sits out for
        a few seconds (its health checks may still answer while its backends are blocked).
        A caller's shorter `timeout=` says nothing about the replica, and does not count."""
        if self.role == "replica":
            self._slow_until = time.monotonic() + _SLOW_FOR

    @property
    def available(self) -> bool:
        """Healthy, and not sitting out after a timeout."""
        return self.healthy and (not self._slow_until or time.monotonic() >= self._slow_until)

    def reachable(self) -> None:
        """The monitor reached the primary."""
        self.healthy = True

    def unreachable(self) -> None:
        """The monitor could not reach this node, or it is no standby."""
        self.healthy = False
        self.stalled = False
        if self.role == "replica":
            self.position = 0  # a restarted standby replays from further back: see polled

    def polled(self, *, replayed: int, lag_s: float, lag_bytes: int, serving: bool,
               at: float) -> None:  # fmt: skip
        """The monitor saw this replica at replay position `replayed`, `lag_s`/`lag_bytes`
        behind the primary; `serving` says whether that is within `max_lag`."""
        advanced = max(0, replayed - self._polled_lsn)
        interval = at - self.checked_at if self.checked_at else 0.0
        self.replay_rate = advanced / interval if interval > 0 else 0.0
        # Behind now and at the last poll, with nothing replayed between: replay is paused
        # or blocked, so a read waiting for it would wait its whole causal_wait in vain.
        self.stalled = lag_bytes > 0 and (self.lag_bytes or 0) > 0 and advanced == 0
        self._polled_lsn = replayed
        # What the replica says now, not the most it ever said: a standby that restarts
        # serves again while it replays its WAL from further back.
        self.position = replayed
        self.lag_s, self.lag_bytes = lag_s, lag_bytes
        self.checked_at = at
        self.healthy = serving

    # --- replay position ---------------------------------------------------------------------

    def note_position(self, position: int) -> None:
        """A position this node answered with: a replica's is taken as it is (a restart
        lowers it); the primary's only moves forward."""
        self.position = max(self.position, position) if self.role == "primary" else position

    def may_reach(self, position: int, within: float) -> bool:
        """Whether this replica can be expected to replay `position` within `within`
        seconds: not stalled, and caught up at its last poll (a new write replays in
        milliseconds) or replaying fast enough to cover the gap."""
        if self.position >= position:
            return True
        if self.stalled:
            return False
        if not self.lag_bytes:
            return True
        return position - self.position <= self.replay_rate * within

    def note_causal_wait(self) -> None:
        self.causal_waits += 1

    def ask_position(self, *, sent_after: float = 0.0) -> asyncio.Task[bool]:
        """Ask this node its position now (a replica's replay position, the primary's WAL
        insert position); concurrent askers share one query, unless it was started before
        `sent_after` (loop time): an answer from before then may predate what the asker
        must compare with. The task never fails: it says whether the node answered, and
        `position` holds the latest known."""
        running = self._refresh
        if running is not None and not running.done() and self._refresh_sent >= sent_after:
            return running
        self._refresh_sent = asyncio.get_running_loop().time()
        self._refresh = task = asyncio.create_task(self._ask_position())
        self._asks.add(task)
        task.add_done_callback(self._asks.discard)
        return task

    async def _ask_position(self) -> bool:
        query = _REPLAY_POSITION if self.role == "replica" else INSERT_POSITION
        try:
            text = await self.call(lambda conn: conn.fetchval(query), count=False)
        except Exception:  # the caller falls back to the primary; the monitor decides
            return False
        if text is not None:
            self.note_position(lsn.parse(text))
        return text is not None

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
            "timeouts": self.timeouts,
            "pool_size": size,
            "pool_in_use": size - idle,
            "pool_waiting": self.waiting,
            "outstanding": self.outstanding,
            "replay_lag_s": self.lag_s,
            "replay_lag_bytes": self.lag_bytes,
            "replay_stalled": self.stalled,
            "causal_waits": self.causal_waits,
            "checked_s_ago": round(time.monotonic() - self.checked_at, 3)
            if self.checked_at
            else None,
        }
