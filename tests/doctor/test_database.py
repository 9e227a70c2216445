"""The database checks on the real stack: a missing index, connection churn, replica lag."""

import asyncio
import datetime

import asyncpg

from rung.doctor import Targets, Verdict, diagnose
from rung.testing import RungStack, wait_until
from rung_links.stats import DAILY
from tests.doctor.conftest import Scratch
from tests.doctor.support import named


async def run_stats_query(url: str, *, rows: int, times: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO clicks (id, link_id, clicked_at) SELECT gen_random_uuid(), i % 500, "
            f"now() - (i % 1000) * interval '1 minute' FROM generate_series(1, {rows}) i"
        )
        await conn.execute("ANALYZE clicks")
        today = datetime.datetime.now(datetime.UTC)
        for i in range(times):  # rung_links' stats query, as GET /api/links/{slug}/stats runs it
            await conn.fetch(DAILY, i, today.date(), today.replace(hour=0, minute=0))
    finally:
        await conn.close()


async def test_a_missing_index_is_recommended_verified_and_its_ddl_runs(scratch: Scratch) -> None:
    """The stats query without clicks' index: the doctor names it, HypoPG's estimate falls
    by at least half, and the printed DDL runs and fixes it."""
    await run_stats_query(scratch.primary_url, rows=20_000, times=30)
    report = await diagnose(Targets(db=scratch.primary_url), sample=0.2)

    [index] = named(report, "index on clicks")
    assert index.verdict is Verdict.act
    assert "FROM clicks WHERE link_id = $1 AND clicked_at >= $3" in str(index.evidence["statement"])
    assert index.evidence["columns"] == "link_id, clicked_at"
    assert index.evidence["verified"] is True
    before, after = index.evidence["cost_before"], index.evidence["cost_after"]
    assert isinstance(before, float) and isinstance(after, float) and after <= before / 2
    assert (
        index.evidence["ddl"] == "CREATE INDEX CONCURRENTLY ON public.clicks (link_id, clicked_at)"
    )
    assert [s.rung for s in report.next][:1] == ["indexes"]

    conn = await asyncpg.connect(scratch.primary_url)
    try:
        await conn.execute(str(index.evidence["ddl"]))
    finally:
        await conn.close()
    assert named(await diagnose(Targets(db=scratch.primary_url), sample=0.2), "index on") == []


async def test_without_hypopg_the_candidate_is_reported_unverified(scratch: Scratch) -> None:
    await run_stats_query(scratch.primary_url, rows=20_000, times=5)
    conn = await asyncpg.connect(scratch.primary_url)
    try:
        await conn.execute("DROP EXTENSION hypopg")
    finally:
        await conn.close()
    [index] = named(await diagnose(Targets(db=scratch.primary_url), sample=0.2), "index on clicks")
    assert (index.verdict, index.evidence["verified"], index.evidence["cost_after"]) == (
        Verdict.watch,
        False,
        None,
    )


async def test_a_connection_per_request_is_flagged_as_churn_and_pooling_is_next(
    scratch: Scratch,
) -> None:
    stop = asyncio.Event()

    async def connect_per_request() -> None:
        while not stop.is_set():
            conn = await asyncpg.connect(scratch.primary_url)
            await conn.fetchval("SELECT 1")
            await conn.close()

    naive = [asyncio.create_task(connect_per_request()) for _ in range(4)]
    try:
        report = await diagnose(Targets(db=scratch.primary_url), sample=1.0)
    finally:
        stop.set()
        await asyncio.gather(*naive)
    [churn] = named(report, "connection churn")
    assert churn.verdict is Verdict.act
    assert report.next[0].rung == "pooling"


async def test_a_paused_replica_under_writes_is_flagged(
    rung_stack: RungStack, scratch: Scratch
) -> None:
    rung_stack.pause_replay(0)
    try:
        conn = await asyncpg.connect(scratch.primary_url)
        try:
            await conn.execute(
                "INSERT INTO clicks (id, link_id, clicked_at) "
                "SELECT gen_random_uuid(), i, now() FROM generate_series(1, 1000) i"
            )
        finally:
            await conn.close()
        # The writes reached the replica, which does not replay them.
        received = "SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()"
        wait_until(lambda: rung_stack.sql("replica1", received) == "t")
        targets = Targets(db=scratch.primary_url, replicas=scratch.replica_urls)
        report = await diagnose(targets, sample=0.2)
    finally:
        rung_stack.resume_replay(0)
    [lagging] = named(report, "replica replica1")
    assert lagging.verdict is Verdict.act
    assert lagging.evidence["replay"] == "paused"
    assert isinstance(lagging.evidence["lag_bytes"], int) and lagging.evidence["lag_bytes"] > 0
    assert "replicas" in [s.rung for s in report.next]
