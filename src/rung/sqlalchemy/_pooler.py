"""PgBouncer in transaction mode with no option from the user, for SQLAlchemy's asyncpg
dialect, as `rung.db` does it for its own pools.

SQLAlchemy's dialect prepares every statement (`asyncpg.Connection.prepare`) and caches the
prepared statements per connection; behind a pooler in transaction mode the next
transaction may run on another server connection, where a named statement does not exist
(or exists under that name from another client). With asyncpg's statement cache off, a
prepare is unnamed and re-sent with each execution, and with the dialect's cache off none
is reused: each statement is self-contained, and nothing is left prepared on the server.

The pooler is detected on an engine's first connection (`inet_server_port()` differs from
the port connected to, as `rung.Database` detects it) and the engine keeps the verdict.
"""

from __future__ import annotations

import weakref
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from rung.db._node import SERVER_SETTINGS, behind_pooler
from rung.sqlalchemy._compat import await_

# Connect arguments the dialect consumes itself; asyncpg.connect would refuse them.
_DIALECT_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func",
                 "async_creator_fn")  # fmt: skip


class _Detector:
    """One engine's `do_connect` hook and its verdict."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.pooled: bool | None = None  # None until a probe answered

    def do_connect(self, dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        if self.pooled is None:
            # On the connecting greenlet: await_ runs the probe on the event loop.
            self.pooled = await_(self._probe(cargs, cparams))
        if self.pooled is not False:  # pooled, or unknown (the probe failed): the safe side
            cparams["statement_cache_size"] = 0
            cparams["prepared_statement_cache_size"] = 0
            # asyncpg asks for 'utf-8' at startup; PgBouncer then sends a SET
            # client_encoding before every transaction it hands on (see rung.db's node).
            settings = cparams.get("server_settings") or {}
            cparams["server_settings"] = {**SERVER_SETTINGS, **settings}

    async def _probe(self, cargs: Any, cparams: dict[str, Any]) -> bool | None:
        params = {k: v for k, v in cparams.items() if k not in _DIALECT_ONLY}
        params.update(statement_cache_size=0, timeout=self.timeout)
        try:
            conn = await asyncpg.connect(*cargs, **params)
        except Exception:
            return None  # the real connect says why
        try:
            return await behind_pooler(conn, params.get("port"))
        except Exception:
            return None
        finally:
            conn.terminate()


_detectors: weakref.WeakKeyDictionary[Engine, _Detector] = weakref.WeakKeyDictionary()


def install(engine: AsyncEngine, *, timeout: float) -> None:
    """Make `engine`'s connections pooler-safe when its first one finds a pooler. Once per
    engine, however many session factories use it."""
    sync_engine = engine.sync_engine
    if sync_engine in _detectors:
        return
    detector = _detectors[sync_engine] = _Detector(timeout)
    event.listen(sync_engine, "do_connect", detector.do_connect)


def pooled(engine: AsyncEngine) -> bool | None:
    """Whether `engine` connects through a pooler (None before its first connection)."""
    detector = _detectors.get(engine.sync_engine)
    return None if detector is None else detector.pooled
