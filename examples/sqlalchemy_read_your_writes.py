"""SQLAlchemy 2 async with rung.sqlalchemy: a commit is read back at once, with the replica
stopped replaying, by this context and by another one handed the token; rung.Database's own
reads share the token.

    rung up --replicas 1 && python examples/sqlalchemy_read_your_writes.py
"""

import asyncio
import contextvars

from sqlalchemy import select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import rung
import rung.sqlalchemy
from rung.stack import Stack, default_dir, psql
from rung.testing import wait_until


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "sqla_ryw_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]


async def main() -> None:
    stack = Stack(default_dir()).running()
    assert stack is not None, "start a stack first: rung up"
    urls = stack.urls()
    replica_port = next(c.port for c in stack.components if c.name == "replica1")
    db = rung.Database(urls["primary_url"], urls["replica_urls"][:1], max_lag=60.0)
    Session = rung.sqlalchemy.sessionmaker(db, expire_on_commit=False)  # engines from db's URLs

    async with db, Session:
        async with Session() as session:
            await session.run_sync(lambda s: Base.metadata.create_all(s.connection()))
            await session.execute(text("DELETE FROM sqla_ryw_notes"))
            await session.commit()
        caught_up = f"SELECT pg_last_wal_replay_lsn() >= '{db.token()}'"
        wait_until(lambda: psql(replica_port, caught_up) == "t")  # the replica has the table
        psql(replica_port, "SELECT pg_wal_replay_pause()")  # it goes stale
        try:
            async with Session() as session:
                session.add(Note(id=1, body="hello"))
                session.after_commit(announce, db)  # runs after the commit, never on rollback
                await session.commit()
                print("writer sees:", await session.scalar(select(Note.body)))
            print("db.fetchval:", await db.fetchval("SELECT body FROM sqla_ryw_notes"))
            token = db.token()  # what rung.web's middleware puts in a cookie

            async def another_instance() -> None:
                async with Session() as session:
                    print("no token:  ", await session.scalar(select(Note.body)))
                    with db.observe(token):
                        print("with token:", await session.scalar(select(Note.body)))

            await asyncio.create_task(another_instance(), context=contextvars.Context())
        finally:
            psql(replica_port, "SELECT pg_wal_replay_resume()")
        print("served by:", {name: node["queries"] for name, node in db.stats().items()})


async def announce(db: rung.Database) -> None:
    print("committed: ", db.token() is not None)


if __name__ == "__main__":
    asyncio.run(main())
