"""The one place that maps what SQLAlchemy and asyncpg raise to rung's exception tree.

Only conditions rung knows about are mapped (a node that cannot be reached, a pool that
stayed full); a statement's own error (an IntegrityError, a syntax error) and anything the
caller's code raises pass through unchanged. The original is the `__cause__`.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa_exc

from rung.db._node import _CONNECTION_SQLSTATES
from rung.errors import DatabaseError, NoHealthyNode, PoolTimeout, PrimaryUnavailable, RungError

# Raised by the driver while connecting, before SQLAlchemy wraps anything: a refused or
# reset connection, a connect timeout, a server that refuses new sessions.
_CONNECTING = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
               asyncpg.TooManyConnectionsError)  # fmt: skip

READ_ONLY = "25006"  # a write a replica refused: rerun on the primary


def is_connection_failure(exc: BaseException) -> bool:
    """True when `exc` says the node (or the connection to it) is gone, not that the
    statement failed: a read that raised it may be retried on another node."""
    if isinstance(exc, RungError):
        return False
    if isinstance(exc, sa_exc.DBAPIError):
        # What rung.Database counts as a connection failure: a broken connection, or a
        # server that is gone, shutting down or refusing sessions (SQLSTATE 08, 57P0x...).
        state = sqlstate(exc) or ""
        return (
            exc.connection_invalidated
            or isinstance(exc.orig, _CONNECTING)
            or isinstance(exc.orig.__cause__ if exc.orig else None, _CONNECTING)
            or state.startswith(_CONNECTION_SQLSTATES)
        )
    return isinstance(exc, _CONNECTING)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error SQLAlchemy wrapped, else None."""
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else None
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state if isinstance(state, str) else None


def translate(exc: BaseException, *, primary: bool) -> DatabaseError | None:
    """The rung error for `exc`, raised on the primary (`primary`) or on a read that found
    no node; None when `exc` is not one rung maps."""
    if isinstance(exc, sa_exc.TimeoutError):  # QueuePool's "limit ... reached, timed out"
        return PoolTimeout(f"no free connection in the engine's pool: {exc}")
    if not is_connection_failure(exc):
        return None
    if primary:
        return PrimaryUnavailable(f"the primary cannot be reached: {exc!r:.300}")
    return NoHealthyNode(f"no node could serve the read: {exc!r:.300}")
