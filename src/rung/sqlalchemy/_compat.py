"""What differs between the SQLAlchemy versions rung supports (2.0 and later)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import sqlalchemy.util

T = TypeVar("T")


def await_(awaitable: Awaitable[T]) -> T:
    """Await `awaitable` from sync code that SQLAlchemy runs on a greenlet (its asyncio
    bridge): the event loop runs it meanwhile. 2.1 names it `await_`; 2.0 `await_only`."""
    fn = getattr(sqlalchemy.util, "await_", None) or sqlalchemy.util.await_only
    result: T = fn(awaitable)
    return result
