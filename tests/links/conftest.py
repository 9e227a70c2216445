"""Fixtures for the rung_links tests: one database for the session (created on the stack's
primary, dropped at the end), emptied before each test; an app per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from rung.testing import AppClient, RungStack, truncate
from rung_links.app import create_app, services
from tests.links.support import TABLES, Service, forget, scratch_database, settings_on


@pytest.fixture(scope="session")
def links_database(rung_stack: RungStack) -> Iterator[str]:
    """A database of the tests' own on the stack, so the service's tables (users, links,
    clicks, ...) never meet another suite's, nor the stack's own app instances'."""
    with scratch_database(rung_stack, "links_test") as name:
        yield name


@pytest.fixture
async def service(rung_stack: RungStack, links_database: str) -> AsyncIterator[Service]:
    """The app on empty tables that every replica has replayed (list `stale_replicas`
    after this fixture, so the replicas stop with the tables empty)."""
    settings = settings_on(rung_stack, links_database)
    app = create_app(settings)
    db = services(app).db
    try:
        async with AppClient(app, db=db) as client:
            await truncate(db, *TABLES)
            rung_stack.wait_for_replicas()
            client.observe(db.token())
            yield Service(app, client, settings)
    finally:
        forget(settings)
