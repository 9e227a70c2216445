"""rung.Database: read/write splitting over a primary and streaming replicas, with exact
read-your-writes.

    db = rung.Database(primary="postgresql://app@db1/app", replicas=["postgresql://app@db2/app"])
    async with db:
        await db.execute("UPDATE links SET target_url = $1 WHERE slug = $2", url, slug)
        link = await db.fetchrow("SELECT * FROM links WHERE slug = $1", slug)  # sees the update

After a write commits, this context's token becomes a primary WAL position at or after the
commit; a read with a token goes only to a replica whose own replay position has reached it
(waiting up to `causal_wait`), else to the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from rung.db import lsn
from rung.db.monitor import Monitor
from rung.db.node import Connection, Node, is_connection_error
from rung.db.routing import is_read
from rung.errors import DatabaseError, NoHealthyNode, PoolTimeout, PrimaryUnavailable

AfterCommit = Callable[..., Awaitable[Any]]


@dataclass
class _Transaction:
    conn: Connection
    callbacks: list[tuple[AfterCommit, tuple[Any, ...]]] = field(default_factory=list)


class Database:
    """A PostgreSQL primary and its replicas, one pool each (see the module docstring).

    Keyword-only settings, seconds as floats: `min_size`/`max_size` per node pool,
    `acquire_timeout` before `PoolTimeout`, `max_lag` past which a replica serves no reads,
    `causal_wait` a read with a token may wait for a replica before using the primary.
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
    ) -> None:
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError("need 0 <= min_size <= max_size and max_size >= 1")
        if acquire_timeout <= 0 or max_lag < 0 or causal_wait < 0:
            raise ValueError("acquire_timeout must be > 0; max_lag and causal_wait >= 0")

        def node(name: str, url: str, role: str) -> Node:
            return Node(name, url, role=role, min_size=min_size, max_size=max_size,
                        acquire_timeout=acquire_timeout)  # fmt: skip

        self._primary = node("primary", primary, "primary")
        self._replicas = [node(f"replica{i}", url, "replica") for i, url in enumerate(replicas, 1)]
        self.causal_wait = causal_wait
        self.max_lag = max_lag
        self._monitor = Monitor(self._primary, self._replicas, max_lag=max_lag)
        self._monitor_task: asyncio.Task[None] | None = None
        self._token: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            f"rung_lsn_{id(self)}", default=None
        )
        self._bound: contextvars.ContextVar[Connection | None] = contextvars.ContextVar(
            f"rung_conn_{id(self)}", default=None
        )
        self._tx: contextvars.ContextVar[_Transaction | None] = contextvars.ContextVar(
            f"rung_tx_{id(self)}", default=None
        )

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open every pool and start the replica monitor. Nodes that are down do not fail
        the open: they serve once they are back. Opening an open Database does nothing."""
        if self._primary.pool is not None:
            return
        await asyncio.gather(*(n.open() for n in self._nodes))
        if self._replicas:
            await self._monitor.poll()
            self._monitor_task = asyncio.create_task(self._monitor.run(), name="rung-db-monitor")

    async def close(self) -> None:
        """Stop the monitor and close every pool."""
        if self._monitor_task is not None:
            self._monitor_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor_task
            self._monitor_task = None
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

    async def execute(self, query: str, *args: Any) -> str:
        """Run a statement; its status ('INSERT 0 1'). Routed by the statement."""
        result: str = await self._run("execute", query, args)
        return result

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """All rows. Routed by the statement."""
        result: list[asyncpg.Record] = await self._run("fetch", query, args)
        return result

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """The first row, or None. Routed by the statement."""
        result: asyncpg.Record | None = await self._run("fetchrow", query, args)
        return result

    async def fetchval(self, query: str, *args: Any, column: int = 0) -> Any:
        """One value of the first row, or None. Routed by the statement."""
        return await self._run("fetchval", query, (*args,), column=column)

    async def executemany(self, query: str, args: Sequence[Sequence[Any]]) -> None:
        """Run a statement once per argument tuple, on the primary, in one transaction."""
        await self._run("executemany", query, (args,), write=True)

    async def _run(self, method: str, query: str, args: tuple[Any, ...], *,
                   write: bool = False, **kwargs: Any) -> Any:  # fmt: skip
        bound = self._bound.get()
        if bound is not None:  # inside transaction() or primary(): that connection
            return await getattr(bound, method)(query, *args, **kwargs)
        if write or not is_read(query):
            return await self._write(method, query, args, kwargs)
        return await self._read(method, query, args, kwargs)

    async def _write(self, method: str, query: str, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Any:  # fmt: skip
        async with self._on_primary() as conn:
            result = await getattr(conn, method)(query, *args, **kwargs)
            await self._advance(conn)
            return result

    async def _read(self, method: str, query: str, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:  # fmt: skip
        node = await self._choose()
        try:
            return await self._read_on(node, method, query, args, kwargs)
        except Exception as e:
            if not is_connection_error(e):
                raise
        # Reads are safe to retry: once, on another node.
        try:
            other = await self._choose(exclude=node)
            return await self._read_on(other, method, query, args, kwargs)
        except Exception as e:
            if is_connection_error(e):
                raise NoHealthyNode(f"no node could serve the read: {e}") from e
            raise

    async def _read_on(self, node: Node, method: str, query: str, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any:  # fmt: skip
        try:
            result = await node.call(method, query, args, kwargs)
        except PoolTimeout:
            raise
        except Exception as e:
            node.errors += 1
            if is_connection_error(e):
                node.mark_down()
            raise
        node.queries += 1
        return result

    # --- choosing a node ---------------------------------------------------------------------

    async def _choose(self, *, exclude: Node | None = None) -> Node:
        """The node for a read: a healthy replica that has replayed this context's token
        (checked per replica), waiting up to `causal_wait` for one; else the primary."""
        candidates = [r for r in self._replicas if r.healthy and r is not exclude]
        token = self._token.get()
        if token is not None and candidates:
            need = lsn.parse(token)
            ready = [r for r in candidates if r.replay_lsn >= need]
            if not ready and self.causal_wait > 0:
                ready = await self._wait_for_replay(candidates, need)
            candidates = ready
        if candidates:
            return _least_busy(candidates)
        if exclude is self._primary:
            raise NoHealthyNode("no healthy replica, and the primary already failed this read")
        return self._primary

    async def _wait_for_replay(self, candidates: list[Node], need: int) -> list[Node]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.causal_wait
        while (remaining := deadline - loop.time()) > 0:
            asks = {r.ask_replay() for r in candidates}  # shared: leaving them running is fine
            await asyncio.wait(asks, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            ready = [r for r in candidates if r.healthy and r.replay_lsn >= need]
            if ready:
                return ready
            await asyncio.sleep(min(0.001, max(0.0, deadline - loop.time())))
        return []

    # --- explicit connections ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _on_primary(self) -> AsyncIterator[Connection]:
        node = self._primary
        try:
            async with node.connection() as conn:
                yield conn
        except PoolTimeout:
            raise
        except Exception as e:
            node.errors += 1
            if is_connection_error(e):
                raise PrimaryUnavailable(f"the primary cannot be reached: {e}") from e
            raise
        node.queries += 1

    @contextlib.asynccontextmanager
    async def primary(self) -> AsyncIterator[Connection]:
        """An explicit primary connection (autocommit); `db.fetch` & co. inside use it, and
        this context's token advances when the block ends."""
        if (bound := self._bound.get()) is not None:
            yield bound
            return
        async with self._on_primary() as conn:
            reset = self._bound.set(conn)
            try:
                yield conn
            finally:
                self._bound.reset(reset)
                with contextlib.suppress(Exception):  # autocommit: writes may have landed
                    await self._advance(conn)

    @contextlib.asynccontextmanager
    async def replica(self) -> AsyncIterator[Connection]:
        """An explicit read connection, chosen as a routed read would be."""
        node = await self._choose()
        async with node.connection() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A transaction on the primary; `db.fetch` & co. inside run in it. On commit the
        context's token advances and `after_commit` callbacks run; on rollback they do not.
        Nested, it is a savepoint of the outer transaction."""
        outer = self._tx.get()
        if outer is not None:
            mark = len(outer.callbacks)
            try:
                async with outer.conn.transaction():
                    yield outer.conn
            except BaseException:
                del outer.callbacks[mark:]  # rolled back to the savepoint
                raise
            return
        async with self._on_primary() as conn:
            tx = _Transaction(conn)
            reset_tx, reset_bound = self._tx.set(tx), self._bound.set(conn)
            try:
                async with conn.transaction():
                    yield conn
                await self._advance(conn)
            finally:
                self._tx.reset(reset_tx)
                self._bound.reset(reset_bound)
        errors = []
        for fn, args in tx.callbacks:
            try:
                await fn(*args)
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def after_commit(self, fn: AfterCommit, *args: Any) -> None:
        """Run `await fn(*args)` once the enclosing `transaction()` commits; never on rollback.

        >>> db.after_commit(cache.invalidate, f"link:{slug}")
        """
        tx = self._tx.get()
        if tx is None:
            raise DatabaseError("after_commit() needs an open `async with db.transaction():`")
        tx.callbacks.append((fn, args))

    # --- consistency tokens ------------------------------------------------------------------

    def token(self) -> str | None:
        """The WAL position this context must observe (None before any write)."""
        return self._token.get()

    @contextlib.contextmanager
    def observe(self, token: str | None) -> Iterator[None]:
        """Reads inside see at least `token` (from a cookie, a header, a queue event...).
        Writes made inside keep advancing the context's token after the block."""
        if token is not None and not lsn.valid(token):
            raise ValueError(f"not a consistency token: {token!r}")
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

    async def _advance(self, conn: Connection) -> None:
        position = await conn.fetchval("SELECT pg_current_wal_insert_lsn()::text")
        self._token.set(lsn.later(self._token.get(), position))

    # --- stats -------------------------------------------------------------------------------

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per node: role, health, queries, errors, pool size / in use / waiting, replay lag."""
        return {n.name: n.stats() for n in self._nodes}


def _least_busy(nodes: list[Node]) -> Node:
    if len(nodes) == 1:
        return nodes[0]
    fewest = min(n.outstanding for n in nodes)
    return random.choice([n for n in nodes if n.outstanding == fewest])
