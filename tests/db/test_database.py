"""rung.Database against the real stack: routing, read-your-writes, health, pools."""

import asyncio
import random
import secrets

import pytest

import rung
from rung.testing import RungStack
from tests.helpers import in_fresh_context, poll


async def test_reads_go_to_replicas_and_writes_to_the_primary(
    db: rung.Database, table: str
) -> None:
    """Without a token a read is served by a replica; a write by the primary."""
    before = db.stats()
    await in_fresh_context(db.fetch(f"SELECT * FROM {table}"))
    await db.execute(f"INSERT INTO {table} VALUES (1, 1)")
    after = db.stats()
    replica_reads = sum(after[n]["queries"] - before[n]["queries"] for n in after if n != "primary")
    assert replica_reads == 1
    assert after["primary"]["queries"] - before["primary"]["queries"] == 1


async def test_read_your_writes_while_replay_is_paused(
    db: rung.Database, table: str, rung_stack: RungStack
) -> None:
    """1,000 write→read pairs in the writer's context all see their write, while a read in a
    fresh context is served by the paused replica and sees the stale state."""
    rung_stack.pause_replay(0)
    try:
        for i in range(1000):
            await db.execute(f"INSERT INTO {table} VALUES ($1, $1)", i)
            assert await db.fetchval(f"SELECT v FROM {table} WHERE k = $1", i) == i
        async with rung.Database(
            rung_stack.primary_url, rung_stack.replica_urls[:1], max_lag=60.0
        ) as only_paused:
            stale = await in_fresh_context(only_paused.fetchval(f"SELECT count(*) FROM {table}"))
            assert only_paused.stats()["replica1"]["queries"] == 1
        assert stale == 0
    finally:
        rung_stack.resume_replay(0)


async def test_token_reads_use_the_caught_up_replica_never_the_paused_one(
    db: rung.Database, table: str, rung_stack: RungStack
) -> None:
    """With replica1 paused, reads carrying a token go to replica2, never to replica1."""
    assert len(rung_stack.replica_urls) >= 2
    rung_stack.pause_replay(0)
    try:
        before = db.stats()
        for i in range(200):
            await db.execute(f"INSERT INTO {table} VALUES ($1, $1)", i)
            assert await db.fetchval(f"SELECT v FROM {table} WHERE k = $1", i) == i
        after = db.stats()
        assert after["replica1"]["queries"] == before["replica1"]["queries"]
        assert after["replica2"]["queries"] - before["replica2"]["queries"] > 0
    finally:
        rung_stack.resume_replay(0)


async def test_observe_carries_a_token_to_another_context(
    db: rung.Database, table: str, rung_stack: RungStack
) -> None:
    """A token handed to another context (a cookie, a queue event) makes its reads see the
    write even when it runs on a different Database object (another instance)."""
    rung_stack.pause_replay(0)
    try:
        await db.execute(f"INSERT INTO {table} VALUES (7, 70)")
        token = db.token()
        assert token is not None
        async with rung.Database(
            rung_stack.primary_url, rung_stack.replica_urls[:1], max_lag=60.0
        ) as other:

            async def read() -> object:
                with other.observe(token):
                    return await other.fetchval(f"SELECT v FROM {table} WHERE k = 7")

            assert await in_fresh_context(read()) == 70
            assert await in_fresh_context(other.fetchval(f"SELECT count(*) FROM {table}")) == 0
    finally:
        rung_stack.resume_replay(0)


async def test_a_replica_stopped_mid_loop_fails_no_read(
    db: rung.Database, table: str, rung_stack: RungStack
) -> None:
    """Reads keep succeeding while a replica goes down (retried once on another node)."""
    await db.execute(f"INSERT INTO {table} VALUES (1, 1)")
    rung_stack.wait_for_replicas()  # the reads carry no token: every replica needs the row
    stopped = asyncio.Event()
    failures: list[BaseException] = []
    reads = 0

    async def loop() -> None:
        nonlocal reads
        while not stopped.is_set() or reads < 200:
            try:
                value = await in_fresh_context(db.fetchval(f"SELECT v FROM {table} WHERE k = 1"))
                assert value == 1
            except Exception as e:
                failures.append(e)
            reads += 1

    name = f"replica{len(rung_stack.replica_urls)}"
    reader = asyncio.create_task(loop())
    try:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(rung_stack.stop, name)
        stopped.set()
        await asyncio.wait_for(reader, timeout=30)
    finally:
        await asyncio.to_thread(rung_stack.start, name)
    assert failures == []
    assert reads >= 200


async def test_a_full_pool_raises_pool_timeout(rung_stack: RungStack) -> None:
    """max_size=1 with its connection held: the next acquire raises PoolTimeout, no hang."""
    db = rung.Database(rung_stack.primary_url, min_size=1, max_size=1, acquire_timeout=0.5)
    async with db, db.primary(), asyncio.timeout(0.5 + 0.5):
        with pytest.raises(rung.PoolTimeout):
            await in_fresh_context(db.execute("SELECT 1"))


async def test_pgbouncer_transaction_mode_needs_no_option(rung_stack: RungStack) -> None:
    """Through PgBouncer: the pooler is detected, 10,000 mixed statements from 50 tasks run
    with 0 errors, and read-your-writes holds."""
    async with rung.Database(
        rung_stack.pooled_primary_url, rung_stack.pooled_replica_urls, max_size=10, max_lag=60.0
    ) as db:
        assert all(node["pooler"] for node in db.stats().values())
        table = f"b_{secrets.token_hex(4)}"
        await db.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, w int, i int)")
        # The workers read in fresh contexts (no token): a replica must have the table.
        await asyncio.to_thread(rung_stack.wait_for_replicas)
        errors: list[BaseException] = []

        async def worker(w: int) -> None:
            rng = random.Random(w)
            for i in range(200):
                try:
                    r = rng.random()
                    if r < 0.5:
                        await db.fetchrow(f"SELECT * FROM {table} WHERE id = $1", i)
                    elif r < 0.8:
                        await db.execute(f"INSERT INTO {table} (w, i) VALUES ($1, $2)", w, i)
                        n = await db.fetchval(
                            f"SELECT count(*) FROM {table} WHERE w = $1 AND i = $2", w, i
                        )
                        assert n == 1, "read-your-writes through PgBouncer"
                    else:
                        async with db.transaction() as conn:
                            await conn.execute(f"INSERT INTO {table} (w, i) VALUES ($1, -1)", w)
                            await db.fetchval(f"SELECT max(id) FROM {table}")
                except Exception as e:
                    errors.append(e)

        await asyncio.gather(*(in_fresh_context(worker(w)) for w in range(50)))
        assert errors == []


async def test_direct_nodes_are_not_taken_for_a_pooler(db: rung.Database) -> None:
    """Straight to PostgreSQL, the statement cache stays on."""
    assert not any(node["pooler"] for node in db.stats().values())


async def test_primary_down_writes_fail_fast_reads_still_work(
    db: rung.Database, table: str, rung_stack: RungStack
) -> None:
    """With the primary stopped, a write raises PrimaryUnavailable; reads come from replicas."""
    await db.execute(f"INSERT INTO {table} VALUES (1, 10)")
    rung_stack.wait_for_replicas()
    await asyncio.to_thread(rung_stack.stop, "primary")
    try:
        async with asyncio.timeout(10):
            with pytest.raises(rung.PrimaryUnavailable) as raised:
                await db.execute(f"INSERT INTO {table} VALUES (2, 20)")
        assert raised.value.__cause__ is not None
        for _ in range(20):
            assert await in_fresh_context(db.fetchval(f"SELECT v FROM {table} WHERE k = 1")) == 10
    finally:
        await asyncio.to_thread(rung_stack.start, "primary")


async def test_after_commit_runs_after_commit_and_never_on_rollback(
    db: rung.Database, table: str
) -> None:
    """Callbacks run once the transaction commits; a rollback (or savepoint rollback) drops them."""
    ran: list[str] = []

    async def note(what: str) -> None:
        ran.append(what)

    async with db.transaction():
        await db.execute(f"INSERT INTO {table} VALUES (1, 1)")
        db.after_commit(note, "committed")
        assert ran == []
        with pytest.raises(ZeroDivisionError):
            async with db.transaction():
                db.after_commit(note, "savepoint rolled back")
                raise ZeroDivisionError
    assert ran == ["committed"]
    with pytest.raises(ZeroDivisionError):
        async with db.transaction():
            db.after_commit(note, "rolled back")
            raise ZeroDivisionError
    assert ran == ["committed"]
    with pytest.raises(rung.DatabaseError):
        db.after_commit(note, "outside")


async def test_statements_inside_a_transaction_use_its_connection(
    db: rung.Database, table: str
) -> None:
    """db.fetch inside transaction() sees the transaction's uncommitted rows."""
    async with db.transaction():
        await db.execute(f"INSERT INTO {table} VALUES (5, 50)")
        assert await db.fetchval(f"SELECT v FROM {table} WHERE k = 5") == 50
        async with db.transaction():  # nested: a savepoint on the same connection
            assert await db.fetchval(f"SELECT count(*) FROM {table}") == 1


@pytest.mark.parametrize("bad", ["not-an-lsn", "0/1\n", "0/1 ", "1" * 5000])
async def test_observe_rejects_a_malformed_token(db: rung.Database, bad: str) -> None:
    """A token that is not an LSN is refused with a rung error, not sent to PostgreSQL."""
    with pytest.raises(rung.InvalidToken), db.observe(bad):
        pass


async def test_a_replica_down_at_open_does_not_fail_the_open(rung_stack: RungStack) -> None:
    """A replica URL nobody listens on: open succeeds and reads go to the primary."""
    dead = "postgresql://rung@127.0.0.1:1/rung"
    async with rung.Database(rung_stack.primary_url, [dead], acquire_timeout=1.0) as db:
        assert await db.fetchval("SELECT 1") == 1
        assert db.stats()["replica1"]["healthy"] is False
        assert db.stats()["primary"]["queries"] == 1


async def test_stats_report_each_node(db: rung.Database) -> None:
    """stats(): per node role, queries, errors, pool size/in use/waiting, replay lag."""
    stats = db.stats()
    assert list(stats) == ["primary", "replica1", "replica2"]
    for node in stats.values():
        for key in (
            "role",
            "queries",
            "errors",
            "pool_size",
            "pool_in_use",
            "pool_waiting",
            "replay_lag_s",
            "replay_lag_bytes",
        ):
            assert key in node
    assert stats["replica1"]["role"] == "replica"
    assert stats["replica1"]["replay_lag_bytes"] is not None


async def test_a_stalled_replica_is_not_waited_for_and_no_read_is_stale(
    rung_stack: RungStack, table: str
) -> None:
    """With the only replica's replay paused, once the monitor has seen it stall, 2,000
    token-carrying reads go straight to the primary (none waits on the replica) and every
    one sees its own write, though the replica lacks them all (the control)."""
    async with rung.Database(
        rung_stack.primary_url, rung_stack.replica_urls[:1], max_lag=60.0
    ) as db:
        rung_stack.pause_replay(0)
        try:
            await db.execute(f"INSERT INTO {table} VALUES (-1, -1)")
            await poll(lambda: db.stats()["replica1"]["replay_stalled"])
            before = db.stats()
            for i in range(2000):
                await db.execute(f"INSERT INTO {table} VALUES ($1, $1)", i)
                assert await db.fetchval(f"SELECT v FROM {table} WHERE k = $1", i) == i
            after = db.stats()
            stale = await in_fresh_context(db.fetchval(f"SELECT count(*) FROM {table}"))
            assert db.stats()["replica1"]["queries"] == after["replica1"]["queries"] + 1
            assert stale == 0  # the replica has none of them: a read there would be stale
        finally:
            rung_stack.resume_replay(0)
        assert after["replica1"]["causal_waits"] == before["replica1"]["causal_waits"]
        assert after["replica1"]["queries"] == before["replica1"]["queries"]
        await poll(lambda: not db.stats()["replica1"]["replay_stalled"])


async def test_a_select_of_a_function_that_writes_runs_on_the_primary(
    db: rung.Database, table: str, rung_stack: RungStack
) -> None:
    """A replica refuses it (SQLSTATE 25006); rung runs it on the primary, routes that
    statement there from then on, and the row exists."""
    fn = f"{table}_add"
    await db.execute(
        f"CREATE FUNCTION {fn}(k int) RETURNS int LANGUAGE sql AS "
        f"$$ INSERT INTO {table} VALUES (k, k) RETURNING k $$"
    )
    rung_stack.wait_for_replicas()
    before = db.stats()
    assert await in_fresh_context(db.fetchval(f"SELECT {fn}($1)", 1)) == 1
    assert await in_fresh_context(db.fetchval(f"SELECT {fn}($1)", 2)) == 2
    after = db.stats()
    assert rung_stack.sql("primary", f"SELECT count(*) FROM {table}") == "2"
    replica_tries = sum(
        after[n]["queries"] - before[n]["queries"] for n in ("replica1", "replica2")
    )
    assert replica_tries == 0  # a refused statement is not a query served
    assert after["primary"]["queries"] - before["primary"]["queries"] == 2
    assert all(node["errors"] == 0 and node["healthy"] for node in after.values())


async def test_primary_true_sends_a_read_to_the_primary(db: rung.Database, table: str) -> None:
    before = db.stats()["primary"]["queries"]
    assert await in_fresh_context(db.fetchval(f"SELECT count(*) FROM {table}", primary=True)) == 0
    assert await in_fresh_context(db.fetch(f"SELECT * FROM {table}", primary=True)) == []
    assert await in_fresh_context(db.fetchrow(f"SELECT * FROM {table}", primary=True)) is None
    assert db.stats()["primary"]["queries"] - before == 3


async def test_pin_keeps_a_blocks_reads_on_one_replica_and_respects_the_token(
    db: rung.Database, table: str, rung_stack: RungStack
) -> None:
    """Inside pin(), reads without a token all go to one replica; after a write the block
    cannot see there, reads go to the primary, never to the other replica."""
    await db.execute(f"INSERT INTO {table} VALUES (1, 1)")
    rung_stack.wait_for_replicas()

    async def block() -> dict[str, int]:
        before = db.stats()
        async with db.pin():
            for _ in range(50):
                assert await db.fetchval(f"SELECT v FROM {table} WHERE k = 1") == 1
            pinned = next(
                n for n in ("replica1", "replica2")
                if db.stats()[n]["queries"] - before[n]["queries"] == 50
            )  # fmt: skip
            rung_stack.pause_replay(pinned)
            try:
                await db.execute(f"INSERT INTO {table} VALUES (2, 2)")
                for _ in range(20):
                    assert await db.fetchval(f"SELECT v FROM {table} WHERE k = 2") == 2
            finally:
                rung_stack.resume_replay(pinned)
        after = db.stats()
        return {n: after[n]["queries"] - before[n]["queries"] for n in after}

    served = await in_fresh_context(block())
    assert sorted(served.values()) == [0, 21, 50]  # pinned: 50; primary: the write + 20 reads
    assert served["primary"] == 21
