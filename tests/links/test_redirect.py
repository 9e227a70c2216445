"""`GET /r/{slug}`: 302 to the target, 404 unknown, 410 disabled/deleted/expired; writes
reach the redirect at once through after-commit invalidation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rung.testing import AppClient
from rung_links.app import create_app, services
from tests.helpers import poll
from tests.links.support import Service

GONE = {"detail": "this link is disabled, deleted or expired"}


async def test_a_link_redirects_with_302_and_its_target(service: Service) -> None:
    await service.signup_and_login()
    await service.create("https://example.com/docs?x=1#top", slug="docs")
    answer = await service.client.get("/r/docs")
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://example.com/docs?x=1#top"
    assert "set-cookie" not in answer.headers  # no session is loaded or made


async def test_an_unknown_slug_is_404(service: Service) -> None:
    for path in ("/r/nope", "/r/no", "/r/%00%ff", "/r/a/b", "/r/" + "x" * 65):
        answer = await service.client.get(path)
        assert (answer.status_code, answer.json()) == (404, {"detail": "no such link"}), path


async def test_disabling_a_cached_link_answers_410_at_once(service: Service) -> None:
    await service.signup_and_login()
    await service.create(slug="docs")
    assert (await service.client.get("/r/docs")).status_code == 302  # now cached
    await service.client.patch("/api/links/docs", json={"disabled": True})
    answer = await service.client.get("/r/docs")
    assert (answer.status_code, answer.json()) == (410, GONE)
    await service.client.patch("/api/links/docs", json={"disabled": False})
    assert (await service.client.get("/r/docs")).status_code == 302


async def test_deleting_a_cached_link_answers_410_at_once(service: Service) -> None:
    await service.signup_and_login()
    await service.create(slug="docs")
    assert (await service.client.get("/r/docs")).status_code == 302
    await service.client.delete("/api/links/docs")
    assert (await service.client.get("/r/docs")).status_code == 410


async def test_a_new_target_replaces_the_cached_one(service: Service) -> None:
    """The PATCH invalidates `link:docs` after its commit: the cached redirect changes."""
    await service.signup_and_login()
    await service.create("https://example.com/old", slug="docs")
    assert (await service.client.get("/r/docs")).headers["location"] == "https://example.com/old"
    hits = service.parts.cache.stats()["hits"]
    assert (await service.client.get("/r/docs")).headers["location"] == "https://example.com/old"
    assert service.parts.cache.stats()["hits"] == hits + 1  # served from the cache
    await service.client.patch("/api/links/docs", json={"target_url": "https://example.com/new"})
    assert (await service.client.get("/r/docs")).headers["location"] == "https://example.com/new"


async def test_an_unknown_slug_cached_as_such_redirects_once_created(service: Service) -> None:
    await service.signup_and_login()
    assert (await service.client.get("/r/docs")).status_code == 404  # cached: no such link
    await service.create(slug="docs")
    assert (await service.client.get("/r/docs")).status_code == 302


async def test_a_link_answers_410_from_its_expiry_without_any_job(service: Service) -> None:
    await service.signup_and_login()
    expires = datetime.now(UTC) + timedelta(seconds=1)
    await service.create(slug="docs", expires_at=expires.isoformat())
    assert (await service.client.get("/r/docs")).status_code == 302  # cached, with its expiry

    async def expired() -> bool:
        return (await service.client.get("/r/docs")).status_code == 410

    await poll(expired, within=5.0)
    assert datetime.now(UTC) >= expires


@asynccontextmanager
async def other_instance(service: Service, **overrides: Any) -> AsyncIterator[AppClient]:
    """A second instance of the app on the same database, Redis servers and namespace."""
    app = create_app(replace(service.settings, instance="other", **overrides))
    async with AppClient(app, db=services(app).db) as client:
        yield client


@pytest.mark.parametrize("near_cache", [0, 10_000], ids=["redis-only", "near-cache"])
async def test_disabling_through_one_instance_stops_the_other(
    service: Service, near_cache: int
) -> None:
    """Without a near cache the other instance answers 410 on its very next request; with
    one, as soon as the invalidation message reaches it (Redis pub/sub, well under a
    millisecond on one host; polled here, since both instances share this event loop)."""
    writer_settings = replace(service.settings, near_cache=near_cache)
    async with other_instance(service, near_cache=near_cache) as other:
        writer_app = create_app(replace(writer_settings, instance="writer"))
        async with AppClient(writer_app, db=services(writer_app).db) as writer:
            writer_service = Service(writer_app, writer, writer_settings)
            await writer_service.signup_and_login()
            await writer_service.create(slug="docs")
            assert (await other.get("/r/docs")).status_code == 302  # cached there
            await writer.patch("/api/links/docs", json={"disabled": True})
            if near_cache:
                await poll(lambda: _status(other, "/r/docs", 410), within=2.0)
            else:
                assert (await other.get("/r/docs")).status_code == 410


async def _status(client: AppClient, path: str, status: int) -> bool:
    return (await client.get(path)).status_code == status
