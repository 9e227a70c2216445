"""Issue 15's acceptance with rung_links running: a stack of its own (two instances behind
HAProxy, no replica, no drain worker) with the service configured as the lab's "naive"
stage, a connection per statement and none of the secondary indexes; the load goes
through HAProxy, and the doctor reads the stack as `rung doctor --dir` does.

No replica: the naive stage sends every read to the primary, whose pg_stat_statements is
where the doctor ranks statements. No drain worker: the naive stage inserts each click on
the request path.
"""

import asyncio
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from rung.doctor import Targets, Verdict, diagnose
from rung.lab import STAGES
from rung.stack import Stack
from rung.testing import wait_until
from tests.doctor.support import links_stack, named, urls

NAIVE = next(stage for stage in STAGES if stage.id == "naive")
# What the lab drops before its first stage, so that the instances create the tables at the
# stage's schema version (the naive stage's: no secondary index).
TABLES = "users, links, clicks, link_daily_stats, job_fences, schema_migrations"
DATABASE_RUNGS = ("indexes", "pooling", "replicas")
TASKS = 4  # concurrent clients of each load


@pytest.fixture(scope="module")
def links() -> Iterator[Stack]:
    """Two rung_links instances behind HAProxy, restarted as the lab starts its naive stage."""
    with links_stack("rung-doctor-links-") as stack:
        stack.stop("app1", "app2")
        asyncio.run(execute(urls(stack)["primary_url"], f"DROP TABLE IF EXISTS {TABLES} CASCADE"))
        stack.configure(NAIVE.env(urls(stack)))
        stack.start("app1", "app2")
        wait_until(lambda: sorted(stack.routed()) == ["app1", "app2"], timeout=30.0)
        yield stack


async def sql(url: str, statement: str, *args: object) -> object:
    """The first value of `statement`, on a connection of its own."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(statement, *args)
    finally:
        await conn.close()


async def execute(url: str, statement: str, *args: object) -> None:
    """Run `statement` as printed (no result), on a connection of its own."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement, *args)
    finally:
        await conn.close()


async def new_links(url: str, prefix: str, count: int) -> int:
    """`count` links `{prefix}-1`... of a new owner; the id of the first (the rest follow)."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            owner = await conn.fetchval(
                "INSERT INTO users (email, password_hash) VALUES ($1, 'none') RETURNING id",
                f"{prefix}@rung.invalid",
            )
            first: int = await conn.fetchval(
                "INSERT INTO links (slug, target_url, owner_id) "
                "SELECT $1 || '-' || i, 'https://example.com/' || i, $2 "
                "FROM generate_series(1, $3) i ORDER BY i RETURNING id",
                prefix,
                owner,
                count,
            )
        return first
    finally:
        await conn.close()


async def test_the_naive_stage_under_load_is_flagged_as_churn_and_pooling_is_next(
    links: Stack,
) -> None:
    """Redirects through HAProxy while the doctor samples: each opens connections, the
    doctor sees the backend starts, and pooling is the first database rung to take."""
    await new_links(urls(links)["primary_url"], "churn", 1)
    limit, seconds = 2_000, 30.0  # the load's bounds; the doctor's run ends it sooner
    statuses: list[int] = []
    stop, under_way = asyncio.Event(), asyncio.Event()

    async def redirects(client: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and len(statuses) < limit and time.monotonic() < deadline:
            statuses.append((await client.get("/r/churn-1")).status_code)
            if len(statuses) >= 20:
                under_way.set()

    async with httpx.AsyncClient(base_url=urls(links)["app_url"], timeout=5.0) as client:
        load = asyncio.gather(*(redirects(client) for _ in range(TASKS)))
        try:
            async with asyncio.timeout(10.0):  # a failed request ends the load: see `finally`
                await under_way.wait()  # the doctor starts once the load is under way
            report = await diagnose(Targets.from_stack(links.dir), sample=1.0)
            overlapped = not load.done()  # still running: it spanned the doctor's whole sample
        finally:
            stop.set()
            await load

    assert overlapped, f"the load ended ({len(statuses)} requests) before the doctor did"
    assert set(statuses) == {302}
    [churn] = named(report, "connection churn")
    assert churn.verdict is Verdict.act, churn.summary
    assert isinstance(churn.evidence["new_sessions_per_s"], float)
    assert churn.rung == "pooling"
    steps = {step.rung: step for step in report.next}
    assert steps["pooling"].verdict is Verdict.act
    assert [r for r in steps if r in DATABASE_RUNGS][:1] == ["pooling"]


async def test_the_stats_statement_without_its_index_gets_a_verified_index_that_runs(
    links: Stack,
) -> None:
    """Many stats views through HAProxy with clicks' index dropped: the doctor names the
    stats statement, HypoPG's estimate falls by at least half, and the DDL runs as printed."""
    primary = urls(links)["primary_url"]
    await execute(primary, "DROP INDEX IF EXISTS clicks_link_time")
    indexed = "SELECT count(*) FROM pg_indexes WHERE tablename = 'clicks' AND indexname <> $1"
    assert await sql(primary, indexed, "clicks_pkey") == 0
    assert await sql(primary, "SELECT count(*) FROM pg_extension WHERE extname = 'hypopg'") == 1

    count, clicks = 500, 100_000  # 200 clicks a link, all of them today's (UTC)
    first = await new_links(primary, "stats", count)
    await execute(
        primary,
        "INSERT INTO clicks (id, link_id, clicked_at) "
        "SELECT gen_random_uuid(), $1 + i % $2, now() FROM generate_series(1, $3) i",
        first,
        count,
        clicks,
    )
    await execute(primary, "ANALYZE clicks")

    # 200 links' stats, each once (the naive stage runs with the cache off besides).
    views = [f"/api/links/stats-{i}/stats" for i in range(1, 201)]
    answers: list[httpx.Response] = []

    async def view(client: httpx.AsyncClient) -> None:
        while views:
            answers.append(await client.get(views.pop()))

    async with (
        httpx.AsyncClient(base_url=urls(links)["app_url"], timeout=10.0) as client,
        asyncio.timeout(120.0),
    ):
        await asyncio.gather(*(view(client) for _ in range(TASKS)))
    assert [a.status_code for a in answers] == [200] * 200
    # each view counted its link's clicks (unless UTC midnight passed since the seed)
    assert {a.json()["clicks"] for a in answers} <= {clicks // count, 0}

    report = await diagnose(Targets.from_stack(links.dir), sample=0.2)
    [index] = named(report, "index on clicks")
    assert index.verdict is Verdict.act, index.summary
    assert "FROM clicks WHERE link_id = $1 AND clicked_at >= $3" in str(index.evidence["statement"])
    calls = index.evidence["calls"]
    assert isinstance(calls, int) and calls >= 200
    assert index.evidence["columns"] == "link_id, clicked_at"
    assert index.evidence["verified"] is True
    before, after = index.evidence["cost_before"], index.evidence["cost_after"]
    assert isinstance(before, float) and isinstance(after, float) and after <= before / 2
    reduction = index.evidence["cost_reduction"]
    assert isinstance(reduction, float) and reduction >= 0.5
    ddl = index.evidence["ddl"]
    assert ddl == "CREATE INDEX CONCURRENTLY ON public.clicks (link_id, clicked_at)"
    assert index.next_step == f"run: {ddl}"
    assert [step.rung for step in report.next][:1] == ["indexes"]

    await execute(primary, str(ddl))
    definition = "SELECT indexdef FROM pg_indexes WHERE tablename = 'clicks' AND indexname <> $1"
    assert await sql(primary, definition, "clicks_pkey") == (
        "CREATE INDEX clicks_link_id_clicked_at_idx ON public.clicks "
        "USING btree (link_id, clicked_at)"
    )
    assert named(await diagnose(Targets.from_stack(links.dir), sample=0.2), "index on") == []
