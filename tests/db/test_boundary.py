"""rung.Database's error boundary on the real stack: only the driver's connection-level
failures become rung errors or mark a node down; the caller's mistakes and the caller's own
exceptions pass through unchanged."""

import asyncio
import copy

import asyncpg
import pytest

import rung
from rung.testing import RungStack
from tests.helpers import in_fresh_context, poll


def _errors(db: rung.Database) -> dict[str, int]:
    return {name: node["errors"] for name, node in db.stats().items()}


async def test_a_wrong_argument_count_is_the_drivers_error_and_marks_nothing_down(
    db: rung.Database, table: str
) -> None:
    """A read and a write with one argument too many raise asyncpg's own error; every node
    stays healthy, with no error counted."""
    with pytest.raises(asyncpg.InterfaceError) as read:
        await in_fresh_context(db.fetchval("SELECT $1::int", 1, 2))
    with pytest.raises(asyncpg.InterfaceError) as write:
        await db.execute(f"INSERT INTO {table} VALUES ($1, $2)", 1, 2, 3)
    assert not isinstance(read.value, rung.RungError)
    assert not isinstance(write.value, rung.RungError)
    assert _errors(db) == {"primary": 0, "replica1": 0, "replica2": 0}
    assert all(node["healthy"] for node in db.stats().values())


async def test_a_thousand_bad_calls_leave_the_replicas_share_of_reads_unchanged(
    db: rung.Database, table: str
) -> None:
    """1,000 buggy calls beside 1,000 good reads: every good read is still served by a
    replica (none falls back to the primary), and no node counts an error."""
    await db.execute(f"INSERT INTO {table} VALUES (1, 10)")
    before = db.stats()

    async def good() -> None:
        for _ in range(1000):
            assert await in_fresh_context(db.fetchval(f"SELECT v FROM {table} WHERE k = 1")) in (
                10,
                None,  # a replica that has not replayed the insert yet: no token here
            )

    async def bad() -> None:
        for _ in range(1000):
            with pytest.raises(asyncpg.InterfaceError):
                await in_fresh_context(db.fetchval("SELECT $1::int", 1, 2))

    await asyncio.gather(good(), bad())
    after = db.stats()
    replica_reads = sum(
        after[n]["queries"] - before[n]["queries"] for n in ("replica1", "replica2")
    )
    assert replica_reads == 1000
    assert after["primary"]["queries"] == before["primary"]["queries"]
    assert _errors(db) == {"primary": 0, "replica1": 0, "replica2": 0}


@pytest.mark.parametrize("block", ["transaction", "primary"])
async def test_the_callers_own_oserror_passes_through_and_the_connection_is_kept(
    rung_stack: RungStack, block: str
) -> None:
    """An OSError raised by the caller's code inside transaction()/primary() arrives as that
    same exception; no primary error is counted, and the same backend serves the next call."""
    async with rung.Database(rung_stack.primary_url, min_size=1, max_size=1) as db:
        pid = await db.fetchval("SELECT pg_backend_pid()", primary=True)
        mine = ConnectionResetError("the payment API hung up")
        with pytest.raises(ConnectionResetError) as raised:
            async with db.transaction() if block == "transaction" else db.primary():
                await db.execute("SELECT 1")
                raise mine
        assert raised.value is mine
        assert db.stats()["primary"]["errors"] == 0
        assert db.stats()["primary"]["healthy"] is True
        assert await db.fetchval("SELECT pg_backend_pid()", primary=True) == pid


async def test_a_rolled_back_transaction_rolls_back_and_reraises(
    db: rung.Database, table: str
) -> None:
    with pytest.raises(FileNotFoundError):
        async with db.transaction():
            await db.execute(f"INSERT INTO {table} VALUES (1, 1)")
            raise FileNotFoundError("/tmp/x")
    assert await db.fetchval(f"SELECT count(*) FROM {table}", primary=True) == 0
    assert db.stats()["primary"]["errors"] == 0


async def test_both_failing_after_commit_callbacks_are_reported_and_the_row_is_committed(
    db: rung.Database, table: str
) -> None:
    """Every callback runs; the caller gets each failure and knows the commit happened."""
    ran: list[str] = []

    async def fail(what: str) -> None:
        ran.append(what)
        raise RuntimeError(what)

    async def note(what: str) -> None:
        ran.append(what)

    with pytest.raises(rung.AfterCommitFailed) as raised:
        async with db.transaction():
            await db.execute(f"INSERT INTO {table} VALUES (1, 1)")
            db.after_commit(fail, "first")
            db.after_commit(note, "second")
            db.after_commit(fail, "third")
    assert ran == ["first", "second", "third"]
    assert raised.value.committed is True
    assert [str(e) for e in raised.value.exceptions] == ["first", "third"]
    assert isinstance(raised.value, ExceptionGroup)
    assert await db.fetchval(f"SELECT v FROM {table} WHERE k = 1") == 1


async def test_on_commit_runs_after_commit_inside_a_transaction_and_at_once_outside(
    db: rung.Database,
) -> None:
    ran: list[str] = []

    async def note(what: str) -> None:
        ran.append(what)

    async with db.transaction():
        assert db.in_transaction()
        await db.on_commit(note, "after commit")
        assert ran == []
    assert ran == ["after commit"]
    assert not db.in_transaction()
    await db.on_commit(note, "now")
    assert ran == ["after commit", "now"]


async def test_a_primary_down_at_open_is_healthy_once_it_is_back(
    rung_stack: RungStack, table: str
) -> None:
    """Opened while the primary is stopped: it shows unhealthy, then healthy within a few
    seconds of its start, and writes succeed."""
    await asyncio.to_thread(rung_stack.stop, "primary")
    try:
        db = rung.Database(rung_stack.primary_url, acquire_timeout=1.0)
        await db.open()
        try:
            assert db.stats()["primary"]["healthy"] is False
            with pytest.raises(rung.PrimaryUnavailable):
                await db.execute(f"INSERT INTO {table} VALUES (1, 1)")
            await asyncio.to_thread(rung_stack.start, "primary")
            await poll(lambda: db.stats()["primary"]["healthy"], within=10.0)
            assert await db.execute(f"INSERT INTO {table} VALUES (2, 2)") == "INSERT 0 1"
        finally:
            await db.close()
    finally:
        await asyncio.to_thread(rung_stack.start, "primary")


async def test_using_a_database_that_is_not_open_is_a_rung_error(rung_stack: RungStack) -> None:
    """Not an assert, which `python -O` would strip."""
    db = rung.Database(rung_stack.primary_url)
    with pytest.raises(rung.DatabaseError, match="not open"):
        await db.fetchval("SELECT 1")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_lag", float("nan")),
        ("acquire_timeout", float("nan")),
        ("acquire_timeout", 0.0),
        ("causal_wait", float("inf")),
        ("causal_wait", -1.0),
        ("max_size", 0),
        ("min_size", 11),
    ],
)
def test_bad_options_fail_at_construction_naming_the_option(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        rung.Database("postgresql://x@127.0.0.1:1/x", **{option: value})  # type: ignore[arg-type]


def test_database_and_asyncpg_connections_are_executors() -> None:
    """rung.Executor covers what a repository function needs from either."""
    assert isinstance(rung.Database("postgresql://x@127.0.0.1:1/x"), rung.Executor)
    assert issubclass(asyncpg.Connection, rung.Executor)


async def test_a_transaction_inside_primary_uses_its_connection(rung_stack: RungStack) -> None:
    """With max_size=1 a second connection would never come (a PoolTimeout)."""
    db = rung.Database(rung_stack.primary_url, max_size=1, acquire_timeout=0.5)
    async with db, db.primary():
        pid = await db.fetchval("SELECT pg_backend_pid()")
        async with db.transaction() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid
            assert db.in_transaction()


async def test_after_commit_callbacks_finish_when_the_caller_is_cancelled(
    db: rung.Database, table: str
) -> None:
    """The commit happened: a cancellation of the caller while the callbacks run does not
    cut them short (an invalidation skipped would leave a stale cache entry)."""
    started, release = asyncio.Event(), asyncio.Event()
    done: list[str] = []

    async def invalidate(key: str) -> None:
        started.set()
        await release.wait()
        done.append(key)

    async def write() -> None:
        async with db.transaction():
            await db.execute(f"INSERT INTO {table} VALUES (1, 1)")
            db.after_commit(invalidate, "k")

    writer = asyncio.create_task(write())
    await started.wait()
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    release.set()
    await poll(lambda: done == ["k"])
    assert await db.fetchval(f"SELECT v FROM {table} WHERE k = 1", primary=True) == 1


def test_after_commit_failed_keeps_its_kind_when_split_or_copied() -> None:
    failed = rung.AfterCommitFailed([rung.CacheUnavailable("down"), KeyError("k")])
    cache_part, rest = failed.split(rung.CacheUnavailable)
    assert isinstance(cache_part, rung.AfterCommitFailed) and cache_part.committed
    assert isinstance(rest, rung.AfterCommitFailed) and isinstance(rest, rung.DatabaseError)
    copied = copy.copy(failed)
    assert isinstance(copied, rung.AfterCommitFailed)
    assert [type(e) for e in copied.exceptions] == [rung.CacheUnavailable, KeyError]
