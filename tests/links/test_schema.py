"""The schema: versioned migrations applied exactly once however many instances start at
once, and an index behind every query the service runs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime
from typing import Any

import pytest

import rung
from rung.testing import AppClient, RungStack
from rung_links import accounts, clicks, jobs, links, stats
from rung_links.app import create_app, services
from rung_links.schema import migrations
from tests.links.support import forget, on_database, scratch_database, settings_on


@pytest.fixture
def fresh_database(rung_stack: RungStack) -> Iterator[str]:
    """An empty database of its own: no migration has run there."""
    with scratch_database(rung_stack, "links_migrate") as name:
        yield name


def test_the_migrations_are_numbered_in_order() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert [m.name for m in found] == ["tables", "indexes"]


async def test_four_instances_starting_at_once_apply_each_migration_once(
    rung_stack: RungStack, fresh_database: str
) -> None:
    """Four apps start concurrently on an empty database: all four start (a migration run
    twice would fail on its CREATE TABLE), and each version is recorded once, by one of
    them."""
    base = settings_on(rung_stack, fresh_database)
    apps = [create_app(settings_on(rung_stack, fresh_database, instance=f"app{i}"))
            for i in range(4)]  # fmt: skip
    async with AsyncExitStack() as stack:
        await asyncio.gather(*(
            stack.enter_async_context(AppClient(app, db=services(app).db)) for app in apps
        ))  # fmt: skip
    async with rung.Database(on_database(rung_stack.primary_url, fresh_database)) as db:
        ledger = await db.fetch(
            "SELECT version, name, applied_by FROM schema_migrations ORDER BY 1"
        )
    assert [(row["version"], row["name"]) for row in ledger] == [(1, "tables"), (2, "indexes")]
    assert {row["applied_by"] for row in ledger} <= {f"app{i}" for i in range(4)}
    forget(base)


async def test_a_restart_applies_nothing(rung_stack: RungStack, fresh_database: str) -> None:
    for instance in ("first", "second"):
        app = create_app(settings_on(rung_stack, fresh_database, instance=instance))
        async with AppClient(app, db=services(app).db):
            pass
    async with rung.Database(on_database(rung_stack.primary_url, fresh_database)) as db:
        applied_by = await db.fetch("SELECT applied_by FROM schema_migrations")
    assert [row["applied_by"] for row in applied_by] == ["first", "first"]


def _queries() -> list[tuple[str, str, list[Any]]]:
    """Every statement the service runs that reads rows, with arguments of the right types."""
    now = datetime.now(UTC)
    today = date.today()
    return [
        ("login", accounts.FIND, ["ann@example.com"]),
        ("redirect's load", links.LOAD, ["docs"]),
        ("my links", links.MINE, [1, 100]),
        ("lock for a change", links.LOCK, ["docs"]),
        ("update", links.UPDATE, [1, "https://example.com", True]),
        ("delete", links.DELETE, [1]),
        ("stats", stats.DAILY, [1, today, now]),
        ("expire", jobs.EXPIRE, [1000]),
        ("fence", jobs.FENCE, ["expire_links", 1]),
        ("last rolled day", jobs.LAST_ROLLED, []),
        ("first click", jobs.FIRST_CLICK, []),
        ("rollup", jobs.ROLL_UP, [now]),
        ("signup", accounts.SIGNUP, ["ann@example.com", "x"]),
        ("create", links.INSERT, ["docs", "https://example.com", 1, None]),
        ("direct click", clicks.INSERT_DIRECT, [[], [], [], [], []]),
    ]


async def test_every_query_the_service_runs_uses_an_index(
    rung_stack: RungStack, fresh_database: str
) -> None:
    """EXPLAIN each query with sequential scans priced out: a plan that still scans a table
    sequentially has no index to use."""
    app = create_app(settings_on(rung_stack, fresh_database))
    async with AppClient(app, db=services(app).db):
        db = services(app).db
        for name, query, args in _queries():
            async with db.transaction():
                await db.execute("SET LOCAL enable_seqscan = off")
                plan = "\n".join(row[0] for row in await db.fetch(f"EXPLAIN {query}", *args))
            assert "Seq Scan" not in plan, f"{name}:\n{plan}"
