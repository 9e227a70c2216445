"""rung.Database: read/write splitting over a primary and streaming replicas, with exact
read-your-writes.

    db = rung.Database(primary="postgresql://app@db1/app", replicas=["postgresql://app@db2/app"])
    async with db:
        await db.execute("UPDATE links SET target_url = $1 WHERE slug = $2", url, slug)
        link = await db.fetchrow("SELECT * FROM links WHERE slug = $1", slug)  # sees the update

After a write commits, this context's token becomes a primary WAL position at or after the
commit; a read with a token goes only to a replica whose own replay position has reached it
(waiting up to `causal_wait` for one that is replaying towards it), else to the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg

from rung._options import count, seconds
from rung.db import _lsn as lsn
from rung.db._monitor import Monitor
from rung.db._node import (
    INSERT_POSITION,
    UNREACHABLE,
    Connection,
    Node,
    Op,
    TimedOut,
    Unreachable,
    drop,
)
from rung.db._routing import is_read
from rung.errors import (
    AfterCommitFailed,
    DatabaseError,
    NoHealthyNode,
    PrimaryUnavailable,
    StatementTimeout,
)
from rung.types import DatabaseStats

T = TypeVar("T")
log = logging.getLogger("rung.db")
AfterCommit = Callable[..., Awaitable[Any]]

_LEARNED_WRITES = 1024  # statements a replica refused as writes, remembered per Database
_DEFAULT = -1.0  # `_on_primary`'s "statement_timeout"
# A token past any real position: a context that wrote, when the primary could not say its
# WAL position after the write. `_needed` reads it as "wherever the primary is when asked".
_UNKNOWN = "FFFFFFFF/FFFFFFFF"


@dataclass
class _Transaction:
    conn: Connection
    callbacks: list[tuple[AfterCommit, tuple[Any, ...]]] = field(default_factory=list)


class Database:
    """A PostgreSQL primary and its replicas, one pool each (see the module docstring).

    Keyword-only settings, seconds as floats: `min_size`/`max_size` per node pool,
    `acquire_timeout` before `PoolTimeout`, `max_lag` past which a replica serves no reads,
    `causal_wait` a read with a token may wait for a replica before using the primary,
    `statement_timeout` for a statement without its own `timeout=` (then
    `StatementTimeout`; a read first tries a second node), `max_queries` a connection runs
    before it is closed and replaced (asyncpg's; 1 opens a connection per statement, what an
    app without a pool pays, which `rung lab` measures).
    """

    def __init__(
        self,
        primary: str,
        replicas: Sequence[str] = (),
        *,
        min_size: int = 1,
        max_size: int = 10,
        acquire_timeout: float = 5.0,
        max_lag: float = 5.0,
        causal_wait: float = 0.05,
        statement_timeout: float = 30.0,
        max_queries: int = 50_000,
    ) -> None:
        max_size = count("max_size", max_size, least=1)
        max_queries = count("max_queries", max_queries, least=1)
        min_size = count("min_size", min_size, most=max_size)
        acquire_timeout = seconds("acquire_timeout", acquire_timeout, positive=True)
        self.max_lag = seconds("max_lag", max_lag)
        self.causal_wait = seconds("causal_wait", causal_wait, most=60.0)
        self.statement_timeout = seconds("statement_timeout", statement_timeout, positive=True)

        def node(name: str, url: str, role: str) -> Node:
            return Node(name, url, role=role, min_size=min_size, max_size=max_size,
                        acquire_timeout=acquire_timeout, max_queries=max_queries)  # fmt: skip

        self._primary = node("primary", primary, "primary")
        self._replicas = [node(f"replica{i}", url, "replica") for i, url in enumerate(replicas, 1)]
        self._monitor = Monitor(self._primary, self._replicas, max_lag=self.max_lag)
        self._monitor_task: asyncio.Task[None] | None = None
        self._learned_writes: dict[str, None] = {}  # insertion-ordered: the oldest goes first
        self._background: set[asyncio.Future[None]] = set()  # after_commit callbacks running

        def var(name: str) -> contextvars.ContextVar[Any]:
            return contextvars.ContextVar(f"rung_{name}_{id(self)}", default=None)

        self._token: contextvars.ContextVar[str | None] = var("lsn")
        self._bound: contextvars.ContextVar[Connection | None] = var("conn")
        self._tx: contextvars.ContextVar[_Transaction | None] = var("tx")
        self._pin: contextvars.ContextVar[Node | None] = var("pin")

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open every pool and start the health monitor. Nodes that are down do not fail
        the open: they serve once they are back. Opening an open Database does nothing."""
        if self._primary.pool is not None:
            return
        await asyncio.gather(*(n.open() for n in self._nodes))
        await self._monitor.poll()
        self._monitor_task = asyncio.create_task(self._monitor.run(), name="rung-db-monitor")

    async def close(self) -> None:
        """Let after-commit callbacks still running finish, stop the monitor and close
        every pool."""
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._monitor_task is not None:
            self._monitor_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor_task
            self._monitor_task = None
        self._monitor.close()
        await asyncio.gather(*(n.close() for n in self._nodes))

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def _nodes(self) -> list[Node]:
        return [self._primary, *self._replicas]

    # --- statements, routed ------------------------------------------------------------------

    async def execute(self, query: str, *args: Any, primary: bool = False,
                      timeout: float | None = None) -> str:  # fmt: skip
        """Run a statement; its status ('INSERT 0 1'). Routed by the statement; `primary=True`
        sends it to the primary. `timeout` bounds it (default: `statement_timeout`)."""
        t = self._bound_for(timeout)
        op: Op[str] = lambda c: c.execute(query, *args, timeout=t)  # noqa: E731
        return await self._run(query, op, write=primary, own_timeout=timeout is not None)

    async def fetch(self, query: str, *args: Any, primary: bool = False,
                    timeout: float | None = None) -> list[asyncpg.Record]:  # fmt: skip
        """All rows. Routed by the statement; `primary=True` sends it to the primary (a
        SELECT of a function that writes)."""
        t = self._bound_for(timeout)
        op: Op[list[asyncpg.Record]] = lambda c: c.fetch(query, *args, timeout=t)  # noqa: E731
        return await self._run(query, op, write=primary, own_timeout=timeout is not None)

    async def fetchrow(self, query: str, *args: Any, primary: bool = False,
                       timeout: float | None = None) -> asyncpg.Record | None:  # fmt: skip
        """The first row, or None. Routed by the statement (or `primary=True`)."""
        t = self._bound_for(timeout)
        op: Op[asyncpg.Record | None] = lambda c: c.fetchrow(query, *args, timeout=t)  # noqa: E731
        return await self._run(query, op, write=primary, own_timeout=timeout is not None)

    async def fetchval(self, query: str, *args: Any, column: int = 0, primary: bool = False,
                       timeout: float | None = None) -> Any:  # fmt: skip
        """One value of the first row, or None. Routed by the statement (or `primary=True`)."""
        t = self._bound_for(timeout)
        op: Op[Any] = lambda c: c.fetchval(query, *args, column=column, timeout=t)  # noqa: E731
        return await self._run(query, op, write=primary, own_timeout=timeout is not None)

    async def executemany(self, query: str, args: Iterable[Sequence[Any]], *,
                          timeout: float | None = None) -> None:  # fmt: skip
        """Run a statement once per argument tuple, on the primary, in one transaction."""
        t = self._bound_for(timeout)
        op: Op[None] = lambda c: c.executemany(query, args, timeout=t)  # noqa: E731
        await self._run(query, op, write=True, own_timeout=timeout is not None)

    def _bound_for(self, timeout: float | None) -> float:
        return (
            self.statement_timeout
            if timeout is None
            else seconds("timeout", timeout, positive=True)
        )

    async def _run(self, query: str, op: Op[T], *, write: bool, own_timeout: bool) -> T:
        """`own_timeout`: the caller chose the statement's bound (`timeout=`), so a timeout
        says the statement is slow, not that the node is: it is not tried elsewhere."""
        bound = self._bound.get()
        if bound is not None:  # inside transaction() or primary(): that connection
            result = await self._on_primary(bound, op(bound), within=None)  # op's own bound
            self._primary.succeeded()
            return result
        if write or query in self._learned_writes or not is_read(query):
            return await self._write(op)
        return await self._read(query, op, own_timeout)

    async def _write(self, op: Op[T]) -> T:
        async def then_position(conn: Connection) -> tuple[T, str | None]:
            result = await op(conn)
            return result, await self._position(conn)

        try:
            result, position = await self._primary.call(then_position)
        except Unreachable as e:
            raise _primary_error(e) from e.__cause__
        self._advance(position)
        return result

    async def _position(self, conn: Connection) -> str | None:
        """The primary's WAL position after a write that has happened; None when the
        connection failed to say (the write stands all the same)."""
        try:
            position: str = await conn.fetchval(INSERT_POSITION, timeout=self.statement_timeout)
        except (*UNREACHABLE, asyncpg.InternalClientError):
            return None
        return position

    async def _read(self, query: str, op: Op[T], own_timeout: bool) -> T:
        node = await self._choose()
        try:
            return await self._read_on(node, query, op)
        except TimedOut as e:
            if own_timeout:
                raise StatementTimeout(f"the read ran past its timeout: {e}") from e.__cause__
            node.sit_out()
        except Unreachable:
            pass
        # Reads are safe to retry: once, on another node.
        try:
            return await self._read_on(await self._choose(exclude=node), query, op)
        except TimedOut as e:
            raise StatementTimeout(f"the read timed out on two nodes: {e}") from e.__cause__
        except Unreachable as e:
            raise NoHealthyNode(f"no node could serve the read: {e}") from e.__cause__

    async def _read_on(self, node: Node, query: str, op: Op[T]) -> T:
        try:
            return await node.call(op)
        except asyncpg.ReadOnlySQLTransactionError:
            if node is self._primary:
                raise
        # A write the classifier could not see (a function that inserts, set_config...):
        # nothing ran on the replica, so run it on the primary and route it there from now.
        self._learned_writes[query] = None
        if len(self._learned_writes) > _LEARNED_WRITES:
            del self._learned_writes[next(iter(self._learned_writes))]
        return await self._write(op)

    async def _on_primary(
        self, conn: Connection, call: Awaitable[T], *, within: float | None = _DEFAULT
    ) -> T:
        """One driver call on a held primary connection, inside the boundary and within
        `within` seconds (default `statement_timeout`: BEGIN, COMMIT and savepoints take no
        timeout of their own; None for a statement that carries its own)."""
        bound = self.statement_timeout if within is _DEFAULT else within
        try:
            with self._primary.mapped(conn):
                async with asyncio.timeout(bound):
                    return await call
        except Unreachable as e:
            raise _primary_error(e) from e.__cause__

    async def _acquire_primary(self) -> Connection:
        try:
            return await self._primary.acquire()
        except Unreachable as e:
            raise _primary_error(e) from e.__cause__

    # --- choosing a node ---------------------------------------------------------------------

    async def _choose(self, *, exclude: Node | None = None) -> Node:
        """The node for a read: a healthy replica (the pinned one inside `pin()`) that has
        replayed this context's token, checked per replica, waiting up to `causal_wait`
        for one that can be expected to get there; else the primary."""
        pinned = self._pin.get()
        if pinned is None:
            candidates = [r for r in self._replicas if r.available and r is not exclude]
        elif pinned is not self._primary and pinned.available and pinned is not exclude:
            candidates = [pinned]
        else:
            candidates = []
        token = self._token.get()
        if token is not None and candidates:
            need = await self._needed(token)
            ready = [r for r in candidates if r.position >= need]
            if not ready and self.causal_wait > 0:
                # Wait only for replicas that are replaying towards the token: one whose
                # replay is stuck would cost every such read its whole causal_wait.
                hopeful = [r for r in candidates if r.may_reach(need, self.causal_wait)]
                ready = await self._wait_for_replay(hopeful, need) if hopeful else []
            candidates = ready
        if candidates:
            return _least_busy(candidates)
        if exclude is self._primary:
            raise NoHealthyNode("no healthy replica, and the primary already failed this read")
        if pinned is not None:  # a pinned block that needed the primary stays there: going
            self._pin.set(self._primary)  # back to its replica could read back in time
        return self._primary

    async def _needed(self, token: str) -> int:
        """The position a read with `token` must see. A token past every position this
        process has seen the primary at is a write newer than the last poll (another
        instance's), or a token from nowhere: the primary is asked its position, briefly,
        and the token is lowered to it, since nothing committed is later than the primary."""
        need = lsn.parse(token)
        primary = self._primary
        if need <= primary.position or self.causal_wait == 0:
            return need
        # Only an answer sent after the token came can lower it: an older one (a query
        # already in flight) may predate the write the token stands for.
        asked = primary.ask_position(sent_after=asyncio.get_running_loop().time())
        await asyncio.wait({asked}, timeout=self.causal_wait)
        if asked.done() and asked.result():
            return min(need, primary.position)
        return need  # no answer: the token stands, and the read goes to the primary

    async def _wait_for_replay(self, candidates: list[Node], need: int) -> list[Node]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.causal_wait
        for r in candidates:
            r.note_causal_wait()
        while (remaining := deadline - loop.time()) > 0:
            asks = {r.ask_position() for r in candidates}  # shared: leaving them running is fine
            await asyncio.wait(asks, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            ready = [r for r in candidates if r.healthy and r.position >= need]
            if ready:
                return ready
            await asyncio.sleep(min(0.001, max(0.0, deadline - loop.time())))
        return []

    # --- explicit connections ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def primary(self) -> AsyncIterator[Connection]:
        """An explicit primary connection (autocommit); `db.fetch` & co. inside use it, and
        this context's token advances when the block ends."""
        if (bound := self._bound.get()) is not None:
            yield bound
            return
        conn = await self._acquire_primary()
        async with self._primary.held(conn):
            reset = self._bound.set(conn)
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(Exception):  # autocommit: earlier writes landed
                    self._advance(await self._position(conn))
                raise
            finally:
                self._bound.reset(reset)
            self._advance(await self._position(conn))
        self._primary.succeeded()

    @contextlib.asynccontextmanager
    async def replica(self) -> AsyncIterator[Connection]:
        """An explicit read connection, chosen as a routed read would be (a node that
        cannot be reached is passed over once, for another)."""
        node = await self._choose()
        try:
            conn = await node.acquire()
        except Unreachable:
            node = await self._choose(exclude=node)
            try:
                conn = await node.acquire()
            except Unreachable as e:
                raise NoHealthyNode(f"no node could serve the read: {e}") from e.__cause__
        async with node.held(conn):
            yield conn
        node.succeeded()

    @contextlib.asynccontextmanager
    async def pin(self) -> AsyncIterator[None]:
        """This block's reads stay on one replica, chosen as a read would be. A read that
        replica cannot serve (a token it has not replayed, a failure) goes to the primary,
        never to another replica, so the block never reads back in time. Writes still go
        to the primary.

            async with db.pin():
                page = await db.fetch("SELECT ... LIMIT 20 OFFSET $1", offset)
                total = await db.fetchval("SELECT count(*) FROM ...")   # the same replica
        """
        reset = self._pin.set(await self._choose())
        try:
            yield
        finally:
            self._pin.reset(reset)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A transaction on the primary; `db.fetch` & co. inside run in it. On commit the
        context's token advances and `after_commit` callbacks run; on rollback they do not.
        Nested, it is a savepoint of the outer transaction; inside `primary()`, it runs on
        that connection. What the block raises passes through unchanged (after the
        rollback). Once COMMIT is sent, a cancellation of the caller does not stop it, nor
        the callbacks: they finish, and the cancellation comes after."""
        outer = self._tx.get()
        if outer is not None:
            async with self._savepoint(outer) as conn:
                yield conn
            return
        if (bound := self._bound.get()) is not None:
            async with self._transaction_on(bound) as conn:
                yield conn
            return
        conn = await self._acquire_primary()
        async with self._primary.held(conn), self._transaction_on(conn) as same:
            yield same

    @contextlib.asynccontextmanager
    async def _transaction_on(self, conn: Connection) -> AsyncIterator[Connection]:
        tx = _Transaction(conn)
        reset_tx, reset_bound = self._tx.set(tx), self._bound.set(conn)
        try:
            frame = conn.transaction()
            await self._on_primary(conn, frame.start())
            try:
                yield conn
            except BaseException:
                await self._rollback(conn, frame)
                raise
            position = await _finish(self._commit(conn, frame))
        finally:
            self._tx.reset(reset_tx)
            self._bound.reset(reset_bound)
        self._primary.succeeded()
        self._advance(position)
        if tx.callbacks:
            # A task of their own, so a cancellation of the caller cannot cut them short;
            # it copies this context, with the token the commit reached.
            callbacks = asyncio.ensure_future(_run_callbacks(tx.callbacks))
            self._background.add(callbacks)
            callbacks.add_done_callback(_settled)
            callbacks.add_done_callback(self._background.discard)
            await asyncio.shield(callbacks)

    async def _commit(self, conn: Connection, frame: asyncpg.transaction.Transaction) -> str | None:
        await self._on_primary(conn, frame.commit())
        return await self._position(conn)

    @contextlib.asynccontextmanager
    async def _savepoint(self, outer: _Transaction) -> AsyncIterator[Connection]:
        mark = len(outer.callbacks)
        frame = outer.conn.transaction()
        await self._on_primary(outer.conn, frame.start())
        try:
            yield outer.conn
        except BaseException:
            del outer.callbacks[mark:]  # rolled back to the savepoint
            await self._rollback(outer.conn, frame)
            raise
        await self._on_primary(outer.conn, frame.commit())

    async def _rollback(self, conn: Connection, frame: asyncpg.transaction.Transaction) -> None:
        """Roll back after the block raised; the caller must see the block's error, so a
        rollback that fails (a broken or hung connection) only drops the connection."""
        try:
            async with asyncio.timeout(self.statement_timeout):
                await frame.rollback()
        except Exception:
            drop(conn)

    def in_transaction(self) -> bool:
        """True inside `async with db.transaction():` (in this context)."""
        return self._tx.get() is not None

    def after_commit(self, fn: AfterCommit, *args: Any) -> None:
        """Run `await fn(*args)` once the enclosing `transaction()` commits; never on rollback.
        Every callback runs; failures come together as `rung.AfterCommitFailed`.

        >>> db.after_commit(cache.invalidate, f"link:{slug}")
        """
        tx = self._tx.get()
        if tx is None:
            raise DatabaseError("after_commit() needs an open `async with db.transaction():`")
        tx.callbacks.append((fn, args))

    async def on_commit(self, fn: AfterCommit, *args: Any) -> None:
        """`after_commit` inside a transaction; outside one, `await fn(*args)` now, since
        whatever it follows has committed already (Django's `on_commit`).

        >>> await db.on_commit(cache.invalidate, f"link:{slug}")
        """
        if self._tx.get() is None:
            await fn(*args)
        else:
            self.after_commit(fn, *args)

    # --- consistency tokens ------------------------------------------------------------------

    def token(self) -> str | None:
        """The WAL position this context must observe (None before any write)."""
        return self._token.get()

    async def bounded_token(self) -> str | None:
        """This context's token, never past the primary's WAL position (see `observe`):
        the one to hand to other processes, as a cache invalidation or a queue event does."""
        token = self._token.get()
        return None if token is None else lsn.format(await self._needed(token))

    @contextlib.contextmanager
    def observe(self, token: str | None) -> Iterator[None]:
        """Reads inside see at least `token` (from a cookie, a header, a queue event...);
        `rung.InvalidToken` when it is not one (check outside input with `rung.Token.valid`).
        A token past the primary's WAL position counts as that position: a forged or
        corrupted one cannot send every read to the primary. Writes made inside keep
        advancing the context's token after the block."""
        if token is not None:
            lsn.parse(token)
        before = self._token.get()
        entered = lsn.later(before, token)
        reset = self._token.set(entered)
        try:
            yield
        finally:
            after = self._token.get()
            self._token.reset(reset)
            if after != entered:  # a write inside advanced it
                self._token.set(lsn.later(before, after))

    def _advance(self, position: str | None) -> None:
        """After a write: the context must see `position` (None: the primary could not say,
        so whatever position it has when a read asks)."""
        if position is None:
            self._token.set(_UNKNOWN)
            return
        self._token.set(lsn.later(self._token.get(), position))
        self._primary.note_position(lsn.parse(position))

    # --- stats -------------------------------------------------------------------------------

    def stats(self) -> DatabaseStats:
        """Per node: role, health, queries, errors (connection-level), pool size / in use /
        waiting, replay lag, whether replay is stalled, reads that waited for it."""
        return {n.name: n.stats() for n in self._nodes}


def _primary_error(e: Unreachable) -> DatabaseError:
    if isinstance(e, TimedOut):
        return StatementTimeout(f"the statement timed out on the primary: {e.__cause__!r}")
    return PrimaryUnavailable(f"the primary cannot be reached: {e.__cause__!r}")


async def _finish(commit: Awaitable[T]) -> T:
    """Await `commit` in a task a cancellation cannot stop: the caller's cancellation waits
    until it is done (bounded by statement_timeout per statement), then goes on."""
    task = asyncio.ensure_future(commit)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as e:
            if task.cancelled():
                raise
            cancelled = e
    if cancelled is not None:
        if not task.cancelled():
            task.exception()  # retrieved: the caller gets its cancellation instead
        raise cancelled
    return task.result()


def _settled(task: asyncio.Future[None]) -> None:
    """Callbacks whose caller was cancelled meanwhile: their failures are logged, since no
    one is left to raise them to."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("after_commit callbacks failed: %r", error)


async def _run_callbacks(callbacks: list[tuple[AfterCommit, tuple[Any, ...]]]) -> None:
    errors: list[Exception] = []
    for fn, args in callbacks:
        try:
            await fn(*args)
        except Exception as e:
            errors.append(e)
    if errors:
        raise AfterCommitFailed(errors)


def _least_busy(nodes: list[Node]) -> Node:
    if len(nodes) == 1:
        return nodes[0]
    fewest = min(n.outstanding for n in nodes)
    return random.choice([n for n in nodes if n.outstanding == fewest])
