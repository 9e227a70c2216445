"""Routing sessions through PgBouncer and with a replica going down, on the real stack."""

import asyncio
import random

import pytest

pytest.importorskip("sqlalchemy")

from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from rung.testing import RungStack
from tests.helpers import in_fresh_context
from tests.sqlalchemy.support import Author, Book, sessions


async def test_pgbouncer_transaction_mode_needs_no_option(rung_stack: RungStack) -> None:
    """10,000 mixed ORM operations from 50 tasks through PgBouncer: 0 errors, and each
    task reads its own writes."""
    async with sessions(rung_stack, pooled=True, max_size=20) as Session:
        errors: list[BaseException] = []
        done = 0

        async def worker(seed: int) -> None:
            nonlocal done
            rng = random.Random(seed)
            async with Session() as session:
                author = Author(name=f"w{seed}")
                session.add(author)
                await session.flush()
                mine = author.id
                await session.commit()
            for i in range(199):
                try:
                    async with Session() as session:
                        kind = rng.random()
                        if kind < 0.6:  # read: the author with its books (two statements)
                            query = select(Author).options(selectinload(Author.books))
                            got = await session.scalar(query.where(Author.id == mine))
                            assert got is not None and got.name.startswith("w")
                        elif kind < 0.8:  # insert in a transaction with a flush and a read
                            session.add(Book(author_id=mine, title=f"b{i}"))
                            await session.flush()
                            count = select(func.count()).where(Book.author_id == mine)
                            assert (await session.scalar(count) or 0) >= 1
                            await session.commit()
                        else:  # update, then read it back in the next session
                            name = f"w{seed}-{i}"
                            stmt = update(Author).where(Author.id == mine).values(name=name)
                            await session.execute(stmt)
                            await session.commit()
                            back = select(Author.name).where(Author.id == mine)
                            assert await session.scalar(back) == name
                except Exception as e:
                    errors.append(e)
                done += 1

        await asyncio.gather(*(in_fresh_context(worker(s)) for s in range(50)))
        stats = Session.db.stats()
    assert errors == []
    assert done == 50 * 199  # plus 50 creates: 10,000 operations
    assert stats["replica1"]["queries"] + stats["replica2"]["queries"] > 0


async def test_orm_reads_survive_a_replica_stopping(rung_stack: RungStack) -> None:
    """Reads keep succeeding while a replica goes down: one that fails mid-flight is
    retried once on another node."""
    async with sessions(rung_stack) as Session:
        async with Session() as session:
            author = Author(name="stays", books=[Book(title="t")])
            session.add(author)
            await session.flush()
            author_id = author.id
            await session.commit()
        rung_stack.wait_for_replicas()  # the reads carry no token: every replica needs it
        stopped = asyncio.Event()
        failures: list[BaseException] = []
        reads = 0

        async def read() -> None:
            async with Session() as session:
                query = select(Author).options(selectinload(Author.books))
                got = await session.scalar(query.where(Author.id == author_id))
                assert got is not None and [b.title for b in got.books] == ["t"]

        async def loop() -> None:
            nonlocal reads
            while not stopped.is_set() or reads < 200:
                try:
                    await in_fresh_context(read())
                except Exception as e:
                    failures.append(e)
                reads += 1

        name = f"replica{len(rung_stack.replica_urls)}"
        readers = [asyncio.create_task(loop()) for _ in range(4)]
        try:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(rung_stack.stop, name)
            stopped.set()
            await asyncio.wait_for(asyncio.gather(*readers), timeout=60)
        finally:
            await asyncio.to_thread(rung_stack.start, name)
        stats = Session.db.stats()
    assert failures == []
    assert reads >= 200
    assert stats[name]["queries"] > 0  # the control: the stopped replica did serve reads
