"""The routing session: SQLAlchemy's AsyncSession whose reads go to replicas that have
replayed the context's consistency token, and whose commits advance that token.

    async with Session() as session:                 # from rung.sqlalchemy.sessionmaker
        link = await session.get(Link, link_id)      # a replica that has the context's writes
        link.clicks += 1
        session.after_commit(cache.invalidate, f"link:{link.slug}")
        await session.commit()              # primary; the token advances, then the callback

What goes where, per statement (`get_bind`): inside a transaction that wrote (a flush, an
insert/update/delete, a FOR UPDATE, a statement marked `rung_primary`), everything goes to
the primary; so does each of those statements. Other reads go where `Router.read` says.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, NoReturn

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from rung.db import Database
from rung.db._database import AfterCommit, _run_callbacks, _settled
from rung.db._node import INSERT_POSITION, Node
from rung.errors import DatabaseError
from rung.sqlalchemy._compat import await_
from rung.sqlalchemy._errors import READ_ONLY, is_connection_failure, sqlstate, translate
from rung.sqlalchemy._router import Route, Router
from rung.sqlalchemy._routing import PRIMARY, is_read


class _Transaction:
    """What a session knows of its root transaction (SQLAlchemy begins one on demand and
    may hold a connection per engine in it)."""

    __slots__ = ("committed", "primary_conn", "replicas", "route", "routed", "wrote")

    def __init__(self) -> None:
        self.route = Route()
        self.wrote = False  # a statement went to the primary as a write: commit advances
        self.committed = False
        self.primary_conn: Connection | None = None
        self.replicas: list[Node] = []  # replicas holding a connection in it (their load)
        self.routed: Node | None = None  # the node of the latest statement


class _SyncSession(Session):
    """The sync half that AsyncSession runs on a greenlet: routing and the commit's token."""

    def __init__(self, *args: Any, router: Router, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._router = router
        self._tx = _Transaction()
        self._callbacks: list[tuple[AfterCommit, tuple[Any, ...]]] = []
        self._marks: dict[SessionTransaction, int] = {}  # savepoint -> callbacks before it

    # --- routing -----------------------------------------------------------------------------

    def get_bind(
        self, mapper: Any = None, *, clause: Any = None, bind: Any = None, **kw: Any
    ) -> Engine | Connection:
        if bind is not None:
            return bind  # type: ignore[no-any-return]
        router, tx = self._router, self._tx
        if (
            tx.wrote
            or self._flushing
            or not is_read(clause)
            or kw.get(PRIMARY)
            or (getattr(self, "execution_options", None) or {}).get(PRIMARY)
        ):
            tx.wrote = True
            tx.route.node = node = router.primary
        else:
            node = router.read(tx.route)
        tx.routed = node
        return router.engines[node]

    def execute(self, *args: Any, **kw: Any) -> Any:
        _primary_by_option(kw)
        return self._run(super().execute, args, kw)

    def scalar(self, *args: Any, **kw: Any) -> Any:
        _primary_by_option(kw)
        return self._run(super().scalar, args, kw)

    def _run(self, call: Callable[..., Any], args: Any, kw: Any) -> Any:
        """`call` (execute or scalar); a read that failed on a replica for want of the
        connection is retried once on another node, a write a replica refused (25006) on
        the primary; what rung knows of is raised as a rung error."""
        try:
            result = call(*args, **kw)
        except Exception as e:
            node = self._tx.routed
            if node is None or node is self._router.primary:
                _raise_mapped(e, primary=True)
            assert node is not None
            if sqlstate(e) == READ_ONLY:  # a SELECT of a function that writes
                self._detach(node, broken=False)
                self._tx.wrote = True
            elif is_connection_failure(e):
                node.failed()  # chosen no more until the monitor sees it serve again
                self._detach(node, broken=True)
                self._tx.route.node, self._tx.route.exclude = None, node
            else:
                raise
            try:
                result = call(*args, **kw)
            except Exception as again:
                _raise_mapped(again, primary=self._tx.routed is self._router.primary)
        routed = self._tx.routed
        if routed is not None:
            routed.succeeded()
        return result

    def flush(self, objects: Any = None) -> None:
        try:
            super().flush(objects)
        except Exception as e:
            _raise_mapped(e, primary=True)
        if self._tx.wrote:  # the flush had something to write (counted once, in stats)
            self._router.primary.succeeded()

    def commit(self) -> None:
        try:
            super().commit()
        except Exception as e:
            _raise_mapped(e, primary=True)

    def rollback(self) -> None:
        self._release_replicas()
        super().rollback()

    def close(self) -> None:
        self._release_replicas()
        super().close()

    def _release_replicas(self) -> None:
        """Roll back and return the replica connections first: a replica that died after a
        read it served must not fail the rollback or the close (nothing of a read is lost)."""
        for node in list(self._tx.replicas):
            self._detach(node, broken=False)

    def _detach(self, node: Node, *, broken: bool) -> None:
        """Take `node`'s connection out of the transaction (SQLAlchemy has no public way):
        a broken one is discarded, a healthy read-only one rolled back and returned."""
        engine = self._router.engines[node]
        conn: Connection | None = None
        trans = self._transaction
        while trans is not None:  # a savepoint lists the connection as its root does
            entry = trans._connections.pop(engine, None)
            if entry is not None:
                conn = entry[0]
                trans._connections.pop(conn, None)
            trans = trans._parent
        if node in self._tx.replicas:
            self._tx.replicas.remove(node)
            node.outstanding -= 1
        if conn is None:
            return
        try:
            if broken:
                conn.invalidate()
            conn.close()
        except Exception:  # a replica that died since: nothing of a read is lost
            with contextlib.suppress(Exception):
                conn.invalidate()

    # --- the transaction's events ------------------------------------------------------------

    def _begun(self, connection: Connection) -> None:
        node = self._router.nodes.get(connection.engine)
        if node is self._router.primary:
            self._tx.primary_conn = connection
        elif node is not None and node not in self._tx.replicas:
            self._tx.replicas.append(node)
            node.outstanding += 1

    def _before_commit(self) -> None:
        """Before the root commits: its replica connections are read-only, so they are
        rolled back and returned first; a replica that died meanwhile cannot then fail a
        commit whose writes the primary may already have made durable."""
        if not self.in_nested_transaction():
            self._release_replicas()

    def _after_commit(self) -> None:
        if self.in_nested_transaction():
            return
        tx = self._tx
        tx.committed = True
        if tx.wrote and tx.primary_conn is not None:
            self._router.db._advance(self._position(tx.primary_conn))

    def _position(self, conn: Connection) -> str | None:
        """The primary's WAL position now that the commit is done, on the connection that
        made it (None when it cannot say: the token then waits for the primary's position
        whenever a read asks, as rung.Database does)."""
        db = self._router.db
        try:
            driver = conn.connection.driver_connection
            if driver is None:
                return None
            position = await_(driver.fetchval(INSERT_POSITION, timeout=db.statement_timeout))
        except Exception:
            return None
        return position if isinstance(position, str) else None

    def _created(self, trans: SessionTransaction) -> None:
        if trans.nested:
            self._marks[trans] = len(self._callbacks)

    def _rolled_back(self, trans: SessionTransaction) -> None:
        if trans.nested:  # callbacks registered inside the savepoint go with it
            del self._callbacks[self._marks.pop(trans, len(self._callbacks)) :]

    def _ended(self, trans: SessionTransaction) -> None:
        if trans.parent is not None:  # (a savepoint's mark stays: its rollback comes after)
            return
        tx, self._tx = self._tx, _Transaction()
        for node in tx.replicas:
            node.outstanding -= 1
        callbacks, self._callbacks = self._callbacks, []
        self._marks.clear()
        if tx.committed and callbacks:
            self._run_callbacks(callbacks)

    def _run_callbacks(self, callbacks: list[tuple[AfterCommit, tuple[Any, ...]]]) -> None:
        """As rung.Database runs them: in a task of their own, which a cancellation of the
        caller does not cut short, with the token the commit reached; failures come
        together as `rung.AfterCommitFailed`."""
        db = self._router.db
        task = asyncio.ensure_future(_run_callbacks(callbacks))
        db._background.add(task)
        task.add_done_callback(_settled)
        task.add_done_callback(db._background.discard)
        await_(asyncio.shield(task))


def _primary_by_option(kw: dict[str, Any]) -> None:
    """`execution_options={"rung_primary": True}` given to execute: tell get_bind, which
    sees only the statement and the bind arguments."""
    options = kw.get("execution_options")
    if options and options.get(PRIMARY):
        kw["bind_arguments"] = {**(kw.get("bind_arguments") or {}), PRIMARY: True}


def _raise_mapped(e: Exception, *, primary: bool) -> NoReturn:
    mapped = translate(e, primary=primary)
    if mapped is None:
        raise e
    raise mapped from e


event.listen(_SyncSession, "after_begin", lambda s, _t, c: s._begun(c))
event.listen(_SyncSession, "before_commit", lambda s: s._before_commit())
event.listen(_SyncSession, "after_commit", lambda s: s._after_commit())
event.listen(_SyncSession, "after_transaction_create", lambda s, t: s._created(t))
event.listen(_SyncSession, "after_soft_rollback", lambda s, t: s._rolled_back(t))
event.listen(_SyncSession, "after_transaction_end", lambda s, t: s._ended(t))


class RoutingSession(AsyncSession):
    """An AsyncSession (all of its API) whose reads go to replicas that have replayed the
    context's consistency token and whose commits advance it; made by
    `rung.sqlalchemy.sessionmaker`.

        session.after_commit(cache.invalidate, f"link:{slug}")
    """

    sync_session_class = _SyncSession
    sync_session: _SyncSession

    @property
    def db(self) -> Database:
        """The rung.Database whose replica positions and token this session uses."""
        return self.sync_session._router.db

    def after_commit(self, fn: AfterCommit, *args: Any) -> None:
        """Run `await fn(*args)` once this session's transaction commits; never on rollback
        (nor for a savepoint rolled back). Every callback runs, with the token the commit
        reached; failures come together as `rung.AfterCommitFailed` from the commit.

        >>> session.after_commit(cache.invalidate, f"link:{slug}")
        """
        if not callable(fn):
            raise DatabaseError(f"after_commit() needs an async callable, not {fn!r}")
        self.sync_session._callbacks.append((fn, args))
