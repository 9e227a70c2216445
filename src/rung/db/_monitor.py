"""The replica health monitor: polls every replica's replay position about every 100 ms.

Staleness is measured against the primary's history, not `pg_last_xact_replay_timestamp()`
alone (which makes an idle-then-written system look hours behind): each poll records
(time, primary WAL position); a replica is as stale as the time since the primary was last
at a position the replica has replayed. A replica that does not answer, is not in
recovery, or is staler than `max_lag` serves no reads until a later poll says otherwise.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import asyncpg

from rung.db import _lsn as lsn
from rung.db._node import INSERT_POSITION, UNREACHABLE, Node

_HISTORY = 1200  # samples kept: two minutes at 100 ms


class Monitor:
    """Polls the primary (its WAL position, its health) and `replicas` until cancelled."""

    def __init__(self, primary: Node, replicas: list[Node], *, max_lag: float,
                 interval: float = 0.1) -> None:  # fmt: skip
        self.primary = primary
        self.replicas = replicas
        self.max_lag = max_lag
        self.interval = interval
        self.history: deque[tuple[float, int]] = deque(maxlen=_HISTORY)
        self._conns: dict[str, asyncpg.Connection] = {}

    async def run(self) -> None:
        try:
            while True:
                await self.poll()
                await asyncio.sleep(self.interval)
        finally:
            for conn in self._conns.values():
                conn.terminate()

    async def poll(self) -> None:
        """One round: the primary's position (and health), then every replica at once."""
        try:
            text = await self._ask(self.primary, INSERT_POSITION)
        except UNREACHABLE:
            self.primary.unreachable()  # no new sample: replicas are judged by the last one
        else:
            position = lsn.parse(text[0])
            self.history.append((time.monotonic(), position))
            self.primary.note_position(position)
            self.primary.reachable()
        await asyncio.gather(*(self._poll_replica(r) for r in self.replicas))

    async def _poll_replica(self, node: Node) -> None:
        try:
            in_recovery, replayed = await self._ask(
                node, "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"
            )
        except UNREACHABLE:
            node.unreachable()
            return
        if not in_recovery or replayed is None:  # promoted, or not a standby at all
            node.unreachable()
            return
        position = lsn.parse(replayed)
        lag_s, lag_bytes = self.staleness(position)
        node.polled(replayed=position, lag_s=lag_s, lag_bytes=lag_bytes,
                    serving=lag_s <= self.max_lag, at=time.monotonic())  # fmt: skip

    def staleness(self, replayed: int) -> tuple[float, int]:
        """(seconds, bytes) a replica at position `replayed` is behind the primary."""
        if not self.history:
            return 0.0, 0
        now, newest = time.monotonic(), self.history[-1][1]
        behind = max(0, newest - replayed)
        if behind == 0:
            return 0.0, 0
        for at, position in reversed(self.history):
            if position <= replayed:
                return now - at, behind
        return now - self.history[0][0], behind  # behind all we remember

    def close(self) -> None:
        """Drop the monitor's own connections (one per node); the next poll opens new ones."""
        conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            conn.terminate()  # no round trip: a hung node cannot hold up close()

    async def _ask(self, node: Node, sql: str) -> asyncpg.Record:
        conn = self._conns.get(node.name)
        timeout = min(1.0, node.acquire_timeout)
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(node.url, timeout=timeout, statement_cache_size=0)
                self._conns[node.name] = conn
            row = await conn.fetchrow(sql, timeout=timeout)
        except BaseException:
            dropped = self._conns.pop(node.name, None)
            if dropped is not None:
                dropped.terminate()
            raise
        assert row is not None
        return row
