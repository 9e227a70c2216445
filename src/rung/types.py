"""Types shared across rung, for annotations in your code.

    async def find_link(db: rung.Executor, slug: str) -> asyncpg.Record | None:
        return await db.fetchrow("SELECT * FROM links WHERE slug = $1", slug)

`rung.Database`, an asyncpg connection and an asyncpg pool connection all fit `Executor`, so a
repository function runs on the routed Database, or on the connection of a transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Executor(Protocol):
    """Something that runs SQL: fetch/fetchrow/fetchval/execute/executemany/transaction."""

    async def execute(self, query: str, /, *args: Any, timeout: float | None = None) -> str: ...

    async def executemany(
        self, query: str, args: Iterable[Sequence[Any]], /, *, timeout: float | None = None
    ) -> Any: ...

    async def fetch(self, query: str, /, *args: Any, timeout: float | None = None) -> list[Any]: ...

    async def fetchrow(self, query: str, /, *args: Any, timeout: float | None = None) -> Any: ...

    async def fetchval(
        self, query: str, /, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Any: ...

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...
