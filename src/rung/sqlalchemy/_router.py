"""Which node, hence which engine, a statement of a routing session goes to: the choice
`rung.Database` makes for its own reads, over the engines that stand for its nodes.

The Database monitors each replica's replay position, lag and health and owns the context's
consistency token; each of its nodes has an engine here (the primary's, and one per replica,
in the same order). A routing session's reads within one transaction stay on the node its
first read chose, as `db.pin()` keeps a block's reads: a later read never sees an older
state than an earlier one, and a transaction holds at most one replica connection.

The choice runs on the greenlet SQLAlchemy runs a session's sync code on (`get_bind` is
sync): when the answer is known at once (no token, or a replica that has replayed it), no
await happens; otherwise the Database's own `_choose` is awaited through the greenlet bridge
(`_compat.await_`), with its token check against the primary and its `causal_wait`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from rung.db import Database
from rung.db import _lsn as lsn
from rung.db._database import _least_busy
from rung.db._node import Node
from rung.sqlalchemy._compat import await_


class Route:
    """Where one root transaction of a session reads. `node` is None until its first read
    (or after a failure); once it is the primary, it stays there."""

    __slots__ = ("exclude", "node", "token")

    def __init__(self) -> None:
        self.node: Node | None = None
        self.token: str | None = None  # the context's token when `node` was last checked
        self.exclude: Node | None = None  # a node that just failed this transaction's read


class Router:
    """A Database's nodes and the engines that reach them."""

    def __init__(self, db: Database, primary: AsyncEngine, replicas: Sequence[AsyncEngine]) -> None:
        self.db = db
        self.primary: Node = db._primary
        self.engines: dict[Node, Engine] = {self.primary: primary.sync_engine}
        self.engines.update(
            (node, engine.sync_engine) for node, engine in zip(db._replicas, replicas, strict=True)
        )
        self.nodes: dict[Engine, Node] = {engine: node for node, engine in self.engines.items()}
        self._opening = asyncio.Lock()

    async def open(self) -> None:
        """Open the Database (its pools and replica monitor) once."""
        async with self._opening:
            await self.db.open()

    def read(self, route: Route) -> Node:
        """The node for a read in the transaction `route` describes. Sync; on the greenlet."""
        db = self.db
        if db._primary.pool is None:  # not open yet: the first session opens it
            await_(self.open())
        token = db._token.get()
        node = route.node
        if node is not None:
            if node is self.primary or token is None or token == route.token:
                return node
            if lsn.parse(token) <= node.position:
                route.token = token
                return node
            # The token moved past this replica (a write in this context meanwhile): it may
            # still serve, after the checks a pinned read gets; if not, the primary.
            need = await_(db._needed(token))
            if node.position < need and not (
                db.causal_wait > 0
                and node.may_reach(need, db.causal_wait)
                and await_(db._wait_for_replay([node], need))
            ):
                node = self.primary
            route.node, route.token = node, token
            return node
        exclude, route.exclude = route.exclude, None
        node = None if exclude is not None else self._at_once(token)
        if node is None:
            node = await_(db._choose(exclude=exclude))
        route.node, route.token = node, token
        return node

    def _at_once(self, token: str | None) -> Node | None:
        """`Database._choose`'s answer when it needs no await: no token, or replicas that
        have replayed it; None when the choice must ask or wait (or `db.pin()` is on)."""
        db = self.db
        if db._pin.get() is not None:
            return None
        candidates = [r for r in db._replicas if r.available]
        if not candidates:
            return self.primary
        if token is None:
            return _least_busy(candidates)
        need = lsn.parse(token)
        if need > self.primary.position:  # past the primary as last seen: _needed asks it
            return None
        ready = [r for r in candidates if r.position >= need]
        return _least_busy(ready) if ready else None
