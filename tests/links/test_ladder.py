"""The ladder's lower rungs as settings: no cache, clicks inserted on the request path, the
tables without their indexes, and a connection per statement (what `rung lab` climbs)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest

from rung.testing import AppClient, RungStack
from rung_links.app import create_app, services
from rung_links.services import Services
from rung_links.settings import Settings
from tests.links.support import Service, forget, scratch_database, settings_on
from tests.links.test_settings import ENV


@pytest.fixture
def fresh_database(rung_stack: RungStack) -> Iterator[str]:
    with scratch_database(rung_stack, "links_ladder") as name:
        yield name


def test_the_lower_rungs_come_from_the_environment() -> None:
    settings = Settings.from_env({**ENV, "RUNG_LINKS_CACHE": "off", "RUNG_LINKS_CLICKS": "direct",
                                  "RUNG_LINKS_SCHEMA_VERSION": "1",
                                  "RUNG_LINKS_DB_MAX_QUERIES": "1"})  # fmt: skip
    assert (settings.cache, settings.clicks, settings.schema_version, settings.db_max_queries) == (
        False, "direct", 1, 1
    )  # fmt: skip
    default = Settings.from_env(ENV)
    assert (default.cache, default.clicks, default.schema_version) == (True, "queue", None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"RUNG_LINKS_CLICKS": "sometimes"}, "RUNG_LINKS_CLICKS must be one of queue, direct"),
        ({"RUNG_LINKS_SCHEMA_VERSION": "0"}, "schema_version must be >= 1"),
        ({"RUNG_LINKS_DB_MAX_QUERIES": "0"}, "db_max_queries and schema_version must be >= 1"),
        ({"RUNG_LINKS_DB_MAX_QUERIES": "nan"}, "RUNG_LINKS_DB_MAX_QUERIES must be a whole"),
        ({"RUNG_LINKS_CACHE": "later"}, "RUNG_LINKS_CACHE must be 1/0"),
    ],
)
def test_a_bad_rung_setting_is_named(change: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env({**ENV, **change})


async def test_without_the_cache_every_redirect_reads_the_database(service: Service) -> None:
    """A change made behind the service's back (no invalidation) shows at the next redirect."""
    await service.signup_and_login()
    await service.create("https://example.com/old", slug="docs")
    async with _instance(service, cache=False) as (client, parts):
        assert (await client.get("/r/docs")).headers["location"] == "https://example.com/old"
        await parts.db.execute(
            "UPDATE links SET target_url = 'https://example.com/new' WHERE slug = 'docs'"
        )
        assert (await client.get("/r/docs")).headers["location"] == "https://example.com/new"
        assert parts.cache.stats()["hits"] + parts.cache.stats()["misses"] == 0


async def test_direct_clicks_are_rows_before_the_redirect_answers(service: Service) -> None:
    await service.signup_and_login()
    await service.create(slug="docs")
    async with _instance(service, clicks="direct") as (client, parts):
        for _ in range(3):
            assert (await client.get("/r/docs")).status_code == 302
        rows = await parts.db.fetchval("SELECT count(*) FROM clicks", primary=True)
        assert rows == 3
        assert (await parts.queue.stats())["depth"] == 0


async def test_max_queries_1_opens_a_connection_per_statement(service: Service) -> None:
    async with _instance(service, db_max_queries=1) as (_, parts):
        pids = [await parts.db.fetchval("SELECT pg_backend_pid()", primary=True)
                for _ in range(3)]  # fmt: skip
    assert len(set(pids)) == 3


async def test_schema_version_1_leaves_the_indexes_out(
    rung_stack: RungStack, fresh_database: str
) -> None:
    settings = settings_on(rung_stack, fresh_database, schema_version=1)
    try:
        for version in (1, None):  # then the rest, at the next start
            app = create_app(replace(settings, schema_version=version))
            async with AppClient(app, db=services(app).db):
                indexes = await services(app).db.fetchval(
                    "SELECT count(*) FROM pg_indexes WHERE indexname = 'clicks_link_time'",
                    primary=True,
                )
                assert indexes == (0 if version == 1 else 1)
    finally:
        forget(settings)


@asynccontextmanager
async def _instance(
    service: Service, **overrides: Any
) -> AsyncIterator[tuple[AppClient, Services]]:
    """Another instance of the service on the same tables, with `overrides`."""
    app = create_app(replace(service.settings, instance="other", **overrides))
    async with AppClient(app, db=services(app).db) as client:
        yield client, services(app)
