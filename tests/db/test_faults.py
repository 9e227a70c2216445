"""rung.Database against hung and blocked servers, and hostile tokens, on the real stack.
Outcomes only: how long each bound took is measured by bench/faults.py."""

import asyncio

import asyncpg
import pytest

import rung
from rung.testing import RungStack, wait_until
from tests.helpers import in_fresh_context


async def test_reads_move_off_a_replica_whose_backends_are_blocked(
    rung_stack: RungStack, table: str
) -> None:
    """replica1 replays an ACCESS EXCLUSIVE lock held open on the primary: its health checks
    still answer, but reads of the table block there. Each read is bounded by the statement
    timeout, moves to replica2 (paused before the lock), and none fails."""
    rung_stack.sql("primary", f"INSERT INTO {table} VALUES (1, 10)")
    rung_stack.wait_for_replicas()
    rung_stack.pause_replay("replica2")
    locker = await asyncpg.connect(rung_stack.primary_url)
    try:
        async with locker.transaction():
            await locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            # Another commit flushes the WAL that holds the lock record, so it streams.
            rung_stack.sql("primary", "SELECT txid_current()")
            held = (
                "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' "
                f"AND relation = '{table}'::regclass"
            )
            wait_until(lambda: rung_stack.sql("replica1", held) == "1")
            async with rung.Database(
                rung_stack.primary_url, rung_stack.replica_urls, max_lag=60.0,
                statement_timeout=0.5,
            ) as db:  # fmt: skip
                assert db.stats()["replica1"]["healthy"]  # the health check does not see it
                values = [
                    await in_fresh_context(db.fetchval(f"SELECT v FROM {table} WHERE k = 1"))
                    for _ in range(20)
                ]
                stats = db.stats()
    finally:
        await locker.close()
        rung_stack.resume_replay("replica2")
    assert values == [10] * 20
    assert stats["replica1"]["timeouts"] >= 1, stats  # the control: replica1 did block a read
    assert stats["replica2"]["queries"] == 20
    assert stats["primary"]["queries"] == 0


async def test_calls_through_a_hung_pgbouncer_raise_a_rung_error(rung_stack: RungStack) -> None:
    """With PgBouncer SIGSTOPped, a write and a read each raise a rung DatabaseError (in
    their bound: bench/faults.py), and work again once it is thawed."""
    async with rung.Database(
        rung_stack.pooled_primary_url, rung_stack.pooled_replica_urls, max_lag=60.0,
        statement_timeout=0.5, acquire_timeout=0.5,
    ) as db:  # fmt: skip
        assert await db.fetchval("SELECT 1") == 1
        rung_stack.freeze("pgbouncer")
        try:
            with pytest.raises(rung.DatabaseError) as write:
                await db.execute("SELECT pg_sleep(0)", primary=True)
            with pytest.raises(rung.DatabaseError) as read:
                await in_fresh_context(db.fetchval("SELECT 1"))
        finally:
            rung_stack.thaw("pgbouncer")
        assert isinstance(write.value, rung.StatementTimeout | rung.PrimaryUnavailable)
        assert isinstance(read.value, rung.StatementTimeout | rung.NoHealthyNode)
        assert await db.execute("SELECT 1", primary=True) == "SELECT 1"


async def test_a_statement_past_its_own_timeout_is_a_statement_timeout(
    db: rung.Database,
) -> None:
    """timeout= per call bounds one statement; the write's outcome is in doubt, and the
    connection it ran on is not reused."""
    with pytest.raises(rung.StatementTimeout):
        await db.execute("SELECT pg_sleep(5)", primary=True, timeout=0.2)
    with pytest.raises(rung.StatementTimeout):
        await in_fresh_context(db.fetchval("SELECT pg_sleep(5)", timeout=0.2))
    assert await db.fetchval("SELECT 1", primary=True) == 1
    with pytest.raises(ValueError, match="timeout"):
        await db.fetchval("SELECT 1", timeout=float("nan"))


async def test_a_token_far_in_the_future_counts_as_the_primarys_position(
    db: rung.Database, table: str, rung_stack: RungStack
) -> None:
    """'FFFFFFFF/FFFFFFFF' cannot send reads to the primary or make them wait: it is
    lowered to the primary's WAL position, which the replicas reach."""
    await db.execute(f"INSERT INTO {table} VALUES (1, 1)")
    rung_stack.wait_for_replicas()  # reached: on a busy machine, not within causal_wait

    async def read() -> tuple[object, str | None]:
        with db.observe("FFFFFFFF/FFFFFFFF"):
            return await db.fetchval(f"SELECT v FROM {table} WHERE k = 1"), await db.bounded_token()

    before = db.stats()
    value, bounded = await in_fresh_context(read())
    after = db.stats()
    assert value == 1
    assert bounded is not None and not rung.Token.later(bounded, db.token() or "0/0")
    assert after["primary"]["queries"] == before["primary"]["queries"]
    assert sum(after[n]["queries"] - before[n]["queries"] for n in ("replica1", "replica2")) == 1


async def test_a_fresh_token_from_another_instance_is_still_honoured(
    db: rung.Database, table: str, rung_stack: RungStack
) -> None:
    """A token newer than this instance has seen the primary at is checked against the
    primary, not lowered: with the replica paused the read goes to the primary."""
    async with rung.Database(
        rung_stack.primary_url, rung_stack.replica_urls[:1], max_lag=60.0
    ) as other:
        rung_stack.pause_replay(0)
        try:
            await db.execute(f"INSERT INTO {table} VALUES (7, 70)")
            token = db.token()

            async def read() -> object:
                with other.observe(token):
                    return await other.fetchval(f"SELECT v FROM {table} WHERE k = 7")

            assert await in_fresh_context(read()) == 70
        finally:
            rung_stack.resume_replay(0)


async def test_the_primary_waits_only_statement_timeout_for_begin(
    rung_stack: RungStack,
) -> None:
    """A transaction's BEGIN and COMMIT, which take no timeout of their own, are bounded by
    statement_timeout: through a hung PgBouncer, transaction() raises a rung error."""
    async with rung.Database(
        rung_stack.pooled_primary_url, statement_timeout=0.5, acquire_timeout=0.5
    ) as db:
        assert await db.fetchval("SELECT 1") == 1
        rung_stack.freeze("pgbouncer")
        try:
            with pytest.raises(rung.DatabaseError):
                async with asyncio.timeout(10), db.transaction():
                    pass
        finally:
            rung_stack.thaw("pgbouncer")


async def test_a_callers_own_short_timeout_leaves_the_replicas_in_service(
    db: rung.Database, table: str
) -> None:
    """timeout= says the statement is slow, not the replica: no retry elsewhere, and the
    next reads still go to the replicas."""
    with pytest.raises(rung.StatementTimeout):
        await in_fresh_context(db.fetchval("SELECT pg_sleep(1)", timeout=0.1))
    before = db.stats()
    for _ in range(20):
        await in_fresh_context(db.fetchval(f"SELECT count(*) FROM {table}"))
    after = db.stats()
    assert after["primary"]["queries"] == before["primary"]["queries"]
    assert after["replica1"]["timeouts"] + after["replica2"]["timeouts"] == 1


async def test_a_timeout_inside_a_transaction_is_the_calls_own(rung_stack: RungStack) -> None:
    """timeout= larger than statement_timeout holds inside transaction() too."""
    async with rung.Database(rung_stack.primary_url, statement_timeout=0.2) as db:
        async with db.transaction():
            assert await db.fetchval("SELECT pg_sleep(0.4)::text", timeout=3.0) == ""
        with pytest.raises(rung.StatementTimeout):
            async with db.transaction():
                await db.fetchval("SELECT pg_sleep(0.4)")
