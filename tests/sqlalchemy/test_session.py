"""Routing sessions on the real stack: where statements go, the shared token, after_commit."""

import math
import subprocess
import sys

import pytest

pytest.importorskip("sqlalchemy")

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import selectinload

import rung
import rung.sqlalchemy
from rung.testing import RungStack
from tests.helpers import in_fresh_context
from tests.sqlalchemy.support import IN_RECOVERY, Author, Book, counted, sessions


def test_import_rung_does_not_import_sqlalchemy() -> None:
    code = "import sys, rung; assert 'sqlalchemy' not in sys.modules, 'imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


async def test_reads_go_to_replicas_and_writes_to_the_primary(rung_stack: RungStack) -> None:
    async with sessions(rung_stack) as Session:

        async def read() -> bool | None:
            async with Session() as session:
                return await session.scalar(IN_RECOVERY)

        assert await in_fresh_context(read()) is True
        async with Session() as session:
            session.add(Author(name="ann"))
            ran = await counted(Session.db, session.commit)  # the flush, the commit: primary
        assert ran["primary"] >= 1
        assert ran["replica1"] == ran["replica2"] == 0


async def test_in_a_transaction_that_wrote_every_statement_goes_to_the_primary(
    rung_stack: RungStack,
) -> None:
    async with sessions(rung_stack) as Session, Session() as session:
        assert await session.scalar(IN_RECOVERY) is True  # before any write: a replica
        session.add(Author(name="bo"))
        await session.flush()
        assert await session.scalar(IN_RECOVERY) is False  # the same transaction: primary
        found = await session.scalar(select(Author.name).where(Author.name == "bo"))
        assert found == "bo"  # the primary's uncommitted row
        await session.rollback()


@pytest.mark.parametrize(
    "marked",
    [
        lambda q: q.with_for_update(),
        lambda q: q.execution_options(rung_primary=True),
    ],
    ids=["for_update", "rung_primary"],
)
async def test_for_update_and_rung_primary_go_to_the_primary(
    rung_stack: RungStack, marked: object
) -> None:
    async with sessions(rung_stack) as Session, Session() as session:
        assert callable(marked)
        assert await session.scalar(marked(select(func.pg_is_in_recovery()))) is False


async def test_the_execute_option_sends_a_read_to_the_primary(rung_stack: RungStack) -> None:
    async with sessions(rung_stack) as Session, Session() as session:
        options = {rung.sqlalchemy.PRIMARY: True}
        assert await session.scalar(IN_RECOVERY, execution_options=options) is False


async def test_a_transactions_reads_stay_on_one_replica(rung_stack: RungStack) -> None:
    async with sessions(rung_stack) as Session:

        async def servers() -> set[int]:
            async with Session() as session:
                return {await session.scalar(text("SELECT inet_server_port()")) for _ in range(20)}

        assert len(await in_fresh_context(servers())) == 1


async def test_writes_through_the_session_are_read_with_replay_paused(
    rung_stack: RungStack, stale_replicas: None
) -> None:
    """Read-your-writes: a commit advances the Database's token; the session's next reads,
    db.fetch and another session in the same context see the write, with no replica
    replaying; another context, without the token, does not."""
    async with sessions(rung_stack) as Session:
        db = Session.db
        async with Session() as session:
            author = Author(name="cy", books=[Book(title="one"), Book(title="two")])
            session.add(author)
            await session.flush()
            author_id = author.id  # the commit expires it
            await session.commit()
            query = select(Author).options(selectinload(Author.books)).where(Author.id == author_id)
            again = await session.scalar(query)
            assert again is not None and [b.title for b in again.books] == ["one", "two"]
        assert db.token() is not None
        title = f"SELECT title FROM {Book.__tablename__} WHERE author_id = $1 ORDER BY id"
        assert [r["title"] for r in await db.fetch(title, author_id)] == ["one", "two"]

        async def read() -> str | None:
            async with Session() as session:
                return await session.scalar(select(Author.name).where(Author.id == author_id))

        assert await read() == "cy"
        assert await in_fresh_context(read()) is None  # the control: the stale replica


async def test_a_write_through_the_database_is_read_by_the_session(
    rung_stack: RungStack, stale_replicas: None
) -> None:
    async with sessions(rung_stack) as Session:
        db = Session.db
        author_id = await db.fetchval(
            f"INSERT INTO {Author.__tablename__} (name) VALUES ('di') RETURNING id"
        )
        async with Session() as session:
            assert await session.get(Author, author_id) is not None


async def test_after_commit_runs_after_a_commit_only(rung_stack: RungStack) -> None:
    async with sessions(rung_stack) as Session:
        ran: list[tuple[str, str | None]] = []

        async def note(what: str) -> None:
            ran.append((what, Session.db.token()))

        async with Session() as session:
            session.add(Author(name="ed"))
            session.after_commit(note, "rolled back")
            await session.rollback()
            async with session.begin():
                session.add(Author(name="ed"))
                session.after_commit(note, "committed")
                async with session.begin_nested() as savepoint:
                    session.after_commit(note, "in a savepoint rolled back")
                    await savepoint.rollback()
                assert ran == []  # not before the commit
        assert ran == [("committed", Session.db.token())]
        assert Session.db.token() is not None


async def test_after_commit_failures_come_after_the_commit(rung_stack: RungStack) -> None:
    async with sessions(rung_stack) as Session:

        async def fail() -> None:
            raise RuntimeError("cache down")

        with pytest.raises(rung.AfterCommitFailed) as failed:
            async with Session() as session:
                session.add(Author(name="flo"))
                session.after_commit(fail)
                await session.commit()
        assert failed.value.committed
        async with Session() as session:  # committed: the token makes it visible
            assert await session.scalar(select(Author.id).where(Author.name == "flo"))


async def test_a_forged_far_future_token_neither_pins_reads_nor_waits(
    rung_stack: RungStack,
) -> None:
    """'FFFFFFFF/FFFFFFFF' is lowered to the primary's position, which the replicas have."""
    async with sessions(rung_stack) as Session:
        db = Session.db
        rung_stack.wait_for_replicas()

        async def read() -> bool | None:
            with db.observe("FFFFFFFF/FFFFFFFF"):
                async with Session() as session:
                    return await session.scalar(IN_RECOVERY)

        async def forged() -> None:
            assert await in_fresh_context(read()) is True

        ran = await counted(db, forged)
        assert ran["primary"] == 0
        assert sum(db.stats()[n]["causal_waits"] for n in ("replica1", "replica2")) == 0


def test_bad_settings_are_named_errors(rung_stack: RungStack) -> None:
    db = rung.Database(rung_stack.primary_url, rung_stack.replica_urls)
    primary = create_async_engine(
        rung_stack.primary_url.replace("postgresql", "postgresql+asyncpg")
    )
    with pytest.raises(ValueError, match="causal_wait"):
        rung.sqlalchemy.sessionmaker(primary=primary, causal_wait=math.nan)
    with pytest.raises(ValueError, match="max_lag"):
        rung.sqlalchemy.sessionmaker(primary=primary, max_lag=-1.0)
    psycopg = create_async_engine("sqlite+aiosqlite://") if _has("aiosqlite") else None
    if psycopg is not None:
        with pytest.raises(ValueError, match="primary must be an engine on postgresql"):
            rung.sqlalchemy.sessionmaker(primary=psycopg)
    with pytest.raises(ValueError, match="primary must be an AsyncEngine"):
        rung.sqlalchemy.sessionmaker(primary=rung_stack.primary_url)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="replicas must have an engine per replica"):
        rung.sqlalchemy.sessionmaker(db, primary=primary, replicas=[])
    with pytest.raises(ValueError, match="max_lag and causal_wait are the Database's"):
        rung.sqlalchemy.sessionmaker(db, causal_wait=0.1)
    with pytest.raises(ValueError, match="needs db="):
        rung.sqlalchemy.sessionmaker()


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ModuleNotFoundError:
        return False
    return True
