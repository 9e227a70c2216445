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
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

import asyncpg

from rung.db import _lsn as lsn
from rung.db._waiters import Line
from rung.errors import DatabaseError, PoolTimeout, RungError
from rung.types import NodeStats

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


async def behind_pooler(conn: asyncpg.Connection[Any], port: int | None) -> bool:
    """Whether `conn`, opened to `port` (None: the default, 5432), reached the server through
    a pooler: the server's own port differs (a Unix socket, where it is unknown, counts)."""
    server_port = await conn.fetchval("SELECT inet_server_port()")
    return server_port is None or server_port != (port or 5432)


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
        # Acquires waiting for a connection, and the pool's slots: `_out` connections are
        # out of the asyncpg pool (held, or being fetched for a waiter), so while it is
        # below max_size the pool has a free slot and its acquire never waits in its queue.
        self._waiters: Line[Connection] = Line(expired=self._pool_timeout, returned=self._return)
        self._out = 0
        self._fetching = 0  # tasks fetching a connection for the waiters
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()  # every task of this node still running
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

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Detect a pooler and create the pool; a node that is down gets an empty pool that
        connects once it is back."""
        self._closing = False
        self._out = self._fetching = 0  # a new pool (a fetch cancelled unstarted never counted)
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
            return await behind_pooler(conn, urlsplit(self.url).port)
        finally:
            await conn.close()

    async def close(self) -> None:
        """Fail the acquires still waiting, stop this node's tasks (awaited), and close its
        pool (which waits for the connections in use to come back)."""
        self._closing = True
        self._waiters.fail_all(self._not_open)
        tasks = list(self._tasks)
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

        A free slot in the pool is taken at once (connecting, if it has no connection yet,
        bounded by the connect timeout, which is `acquire_timeout` too). With all `max_size`
        out, the acquire waits in line (`db/_waiters.py`): first come, first served, each
        waiter bounded by its own timer, and a connection coming back goes to the first.
        It replaced a watchdog that cancelled and un-cancelled waiting tasks, on an
        unmeasured claim that a timer per call cost a fifth of the throughput. It costs
        some: `python bench/db_router.py` on a quiet 2-core machine, 16 tasks over a pool of
        8, gave 0.70x a raw asyncpg pool with this line and 0.77x with the watchdog (the
        same bench at the commit before); with 64 tasks, 0.96x the watchdog (median of 17
        paired rounds on a busy machine, 0.77x-1.28x per round)."""
        pool = self.pool
        if pool is None or self._closing:
            raise self._not_open()
        with self.mapped(None):
            if self._out < self.max_size and not self._waiters:
                self._out += 1
                try:
                    return await pool.acquire()
                except BaseException:
                    self._put_back()
                    raise
            waiter = self._waiters.join(self.acquire_timeout)
            self._serve()
            return await waiter.wait()

    @property
    def waiting(self) -> int:
        """Acquires waiting for a free connection now."""
        return len(self._waiters)

    def _serve(self) -> None:
        """While the pool has a free slot, fetch a connection for each waiter that no
        fetch is under way for."""
        pool = self.pool
        while pool is not None and self._out < self.max_size and self._unserved():
            self._out += 1
            self._fetching += 1
            self._spawn(self._fetch(pool), "fetch")

    def _unserved(self) -> bool:
        """Whether a waiter has no fetch under way for it."""
        return len(self._waiters) > self._fetching and not self._closing

    async def _fetch(self, pool: asyncpg.Pool) -> None:
        """A connection from a free slot (connecting, if it has none) for the first waiter;
        what connecting raised goes to that waiter instead."""
        try:
            conn = await pool.acquire()
        except Exception as e:
            self._fetching -= 1
            self._waiters.fail(e)  # its mapped() makes it Unreachable
            self._put_back()
            return
        except BaseException:  # cancelled by close(): asyncpg takes the slot back
            self._fetching -= 1
            self._put_back()
            raise
        self._fetching -= 1
        if not self._waiters.hand(conn):  # each one left meanwhile: timed out or cancelled
            await self._give_back(conn)

    def _return(self, conn: Connection) -> None:
        """A connection handed to a waiter whose caller was cancelled at that moment, when
        no one else waits: closed, its slot free at once. (A rare race: a reset would need a
        task, and one that close() cancels before it starts would never return it.)"""
        drop(conn)
        self._put_back()

    async def _give_back(self, conn: Connection) -> None:
        """Return `conn` to the pool (asyncpg resets it, bounded), then serve the first
        waiter; raises nothing but a cancellation. A reset that fails makes asyncpg discard
        the connection itself: a slot all the same."""
        pool = self.pool
        if pool is None:  # closed meanwhile
            drop(conn)
            self._out -= 1
            return
        try:
            with contextlib.suppress(Exception):
                await pool.release(conn, timeout=self.acquire_timeout)
        except BaseException:
            # Cancelled, the release (shielded by asyncpg) still runs: the slot comes back
            # a little later than counted, and an acquire meanwhile waits at most its reset.
            self._put_back()
            raise
        self._out -= 1
        if pool.get_idle_size() > 0 and self._unserved():
            # Back in the pool and reset: fetch it for the first waiter here, which neither
            # waits nor connects, rather than in a task: with a task per hand-over the same
            # bench ran at 0.84x the watchdog (median of 5 rounds), inline at about 1x.
            self._out += 1
            self._fetching += 1
            await self._fetch(pool)
        self._serve()

    def _put_back(self) -> None:
        """A slot is free again: it serves the first waiter, if one waits."""
        self._out -= 1
        self._serve()

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        task = asyncio.create_task(coro, name=f"rung-{self.name}-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _pool_timeout(self) -> PoolTimeout:
        return PoolTimeout(
            f"{self.name}: no free connection within {self.acquire_timeout}s "
            f"(max_size={self.max_size})"
        )

    @staticmethod
    def _not_open() -> DatabaseError:
        return DatabaseError("the Database is not open: `async with db:` or `await db.open()`")

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
        await self._give_back(conn)

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
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
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

    def stats(self) -> NodeStats:
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
            "pool_max_size": self.max_size,
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
