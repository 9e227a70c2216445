"""What to cache and what to level, from a workload the test runs on its own database."""

import uuid

import asyncpg
import pytest

from rung.doctor import Targets, Verdict, diagnose
from tests.doctor.conftest import Scratch
from tests.doctor.support import named
from tests.helpers import poll


async def fresh_statistics(conn: asyncpg.Connection) -> None:
    """This database's table counters and every statement's counters start from zero, so
    the rates the doctor measures are the workload's that follows."""
    await conn.execute("SELECT pg_stat_reset(), pg_stat_statements_reset()")


async def counted(url: str, table: str, column: str, least: int) -> None:
    """Wait until the table counters (each backend flushes its own) show the writes."""

    async def check() -> bool:
        conn = await asyncpg.connect(url)
        try:
            value = await conn.fetchval(
                f"SELECT {column} FROM pg_stat_user_tables WHERE relname = $1", table
            )
            return int(value or 0) >= least
        finally:
            await conn.close()

    await poll(check)


async def test_costly_reads_become_cache_candidates_by_how_often_their_tables_are_written(
    scratch: Scratch,
) -> None:
    """A read of a table nobody writes: cache with a TTL; a read of a table updated as often
    as it is read: cache with explicit invalidation; each with the load it would save."""
    conn = await asyncpg.connect(scratch.primary_url)
    try:
        await conn.execute(
            "INSERT INTO users (email, password_hash) VALUES ('a@example.com', 'x');"
            "INSERT INTO links (slug, target_url, owner_id) "
            "SELECT 's' || i, 'https://example.com/' || i, 1 FROM generate_series(1, 9000) i;"
            "INSERT INTO link_daily_stats (link_id, day, clicks) "
            "SELECT i, current_date, i FROM generate_series(1, 9000) i;"
            "ANALYZE links; ANALYZE link_daily_stats"
        )
    finally:
        await conn.close()
    # The setup's writes are counted before the reset, so that they are not the workload's.
    await counted(scratch.primary_url, "link_daily_stats", "n_tup_ins", 9000)
    conn = await asyncpg.connect(scratch.primary_url)
    try:
        await fresh_statistics(conn)
        for i in range(600):
            await conn.fetchval("SELECT count(*) FROM links WHERE target_url LIKE $1", f"%{i}")
            await conn.fetchval("SELECT sum(clicks) FROM link_daily_stats WHERE clicks > $1", i)
            await conn.execute(
                "UPDATE link_daily_stats SET clicks = clicks + 1 WHERE link_id = $1 AND day = "
                "current_date",
                i + 1,
            )
    finally:
        await conn.close()
    await counted(scratch.primary_url, "link_daily_stats", "n_tup_upd", 600)
    report = await diagnose(Targets(db=scratch.primary_url), sample=0.0)

    [rarely] = named(report, "cache candidate: links")
    [often] = named(report, "cache candidate: link_daily_stats")
    assert "FROM links WHERE target_url LIKE $1" in str(rarely.evidence["statement"])
    assert rarely.evidence["often_written_tables"] is None
    assert "a TTL" in rarely.next_step
    assert "FROM link_daily_stats WHERE clicks > $1" in str(often.evidence["statement"])
    assert often.evidence["often_written_tables"] == "public.link_daily_stats"
    assert "db.after_commit(cache.invalidate, key)" in often.next_step
    for finding in (rarely, often):
        assert (finding.verdict, finding.rung) == (Verdict.watch, "cache")
        load, saved = finding.evidence["db_ms_per_s"], finding.evidence["saves_db_ms_per_s"]
        assert isinstance(load, float) and isinstance(saved, float)
        assert saved == pytest.approx(load * 0.9, abs=0.1)  # at the 90 % hit rate assumed
        calls, mean = finding.evidence["calls_per_s"], finding.evidence["mean_ms"]
        assert isinstance(calls, float) and isinstance(mean, float)
        assert load == pytest.approx(calls * mean, rel=0.01)  # at the measured call rate
    assert named(report, "level writes") == []  # no INSERT at a rate: nothing to level


async def test_single_row_inserts_into_an_append_only_table_are_proposed_for_the_queue(
    scratch: Scratch,
) -> None:
    """clicks only ever gets single-row INSERTs: level them; link_daily_stats gets INSERTs
    too, but is updated as well: not append-only, not proposed."""
    conn = await asyncpg.connect(scratch.primary_url)
    try:
        await fresh_statistics(conn)
        for i in range(1500):
            await conn.execute(
                "INSERT INTO clicks (id, link_id, clicked_at) VALUES ($1, $2, now())",
                uuid.uuid4(),
                i % 50,
            )
            if i < 300:
                await conn.execute(
                    "INSERT INTO link_daily_stats (link_id, day, clicks) "
                    "VALUES ($1, current_date, 0)",
                    i,
                )
                await conn.execute(
                    "UPDATE link_daily_stats SET clicks = 1 WHERE link_id = $1 AND day = "
                    "current_date",
                    i,
                )
    finally:
        await conn.close()
    await counted(scratch.primary_url, "clicks", "n_tup_ins", 1500)
    report = await diagnose(Targets(db=scratch.primary_url), sample=0.0)

    [level] = named(report, "level writes to")
    assert level.name == "level writes to clicks"
    assert (level.verdict, level.rung) == (Verdict.watch, "queue")
    assert "INSERT INTO clicks" in str(level.evidence["statement"])
    assert level.evidence["table"] == "public.clicks"
    now, levelled = level.evidence["commits_per_s_now"], level.evidence["commits_per_s_levelled"]
    assert isinstance(now, float) and isinstance(levelled, float)
    assert now == level.evidence["inserts_per_s"]
    assert 0 < levelled < now  # fewer, larger commits
    assert "rung.TableSink(db, table='clicks'" in level.next_step
