"""A small ORM model and helpers shared by the rung.sqlalchemy tests."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import ForeignKey, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

import rung
import rung.sqlalchemy
from rung.testing import RungStack


class Base(DeclarativeBase):
    pass


SUFFIX = secrets.token_hex(3)  # a session's own tables: other test sessions may share the stack


class Author(Base):
    __tablename__ = f"sqla_authors_{SUFFIX}"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    books: Mapped[list[Book]] = relationship(back_populates="author", order_by="Book.id")


class Book(Base):
    __tablename__ = f"sqla_books_{SUFFIX}"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey(f"{Author.__tablename__}.id"))
    title: Mapped[str]
    author: Mapped[Author] = relationship(back_populates="books")


IN_RECOVERY = text("SELECT pg_is_in_recovery()")  # true on a replica: where a read landed
_created = False


@asynccontextmanager
async def sessions(
    rung_stack: RungStack, *, pooled: bool = False, **options: Any
) -> AsyncIterator[rung.sqlalchemy.SessionMaker]:
    """A session factory on the stack (engines from the Database's URLs), the tables made."""
    global _created
    primary = rung_stack.pooled_primary_url if pooled else rung_stack.primary_url
    replicas = rung_stack.pooled_replica_urls if pooled else rung_stack.replica_urls
    db = rung.Database(primary, replicas, max_lag=60.0, **options)
    Session = rung.sqlalchemy.sessionmaker(db)
    async with db:
        if not _created:
            async with Session() as session:
                await session.run_sync(lambda s: Base.metadata.create_all(s.connection()))
                await session.commit()
            rung_stack.wait_for_replicas()
            _created = True
        try:
            yield Session
        finally:
            await Session.close()


def queries(db: rung.Database) -> dict[str, int]:
    return {name: node["queries"] for name, node in db.stats().items()}


async def counted(db: rung.Database, work: Callable[[], Awaitable[Any]]) -> dict[str, int]:
    """How many statements each node ran for `work`."""
    before = queries(db)
    await work()
    after = queries(db)
    return {name: after[name] - before[name] for name in after}
