"""Clicks: onto the queue on the request path, into `clicks` by the drain; straight into
`clicks` when the queue is full or unreachable, each such click counted, none lost or
written twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import rung
from rung.testing import AppClient
from rung_links import drain
from rung_links.app import create_app, services
from rung_links.clicks import event
from rung_links.settings import Settings
from tests.helpers import poll
from tests.links.support import Service


@asynccontextmanager
async def draining(settings: Settings) -> AsyncIterator[None]:
    """rung_links.drain.make(settings) running for the block, on a Database of its own."""
    async with rung.Database(settings.primary_url) as db:
        worker = drain.make(settings, db=db)
        task = asyncio.create_task(worker.run())
        try:
            yield
        finally:
            worker.stop()
            await task
            await worker.queue.close()


async def rows(service: Service) -> list[dict[str, Any]]:
    found = await service.parts.db.fetch("SELECT * FROM clicks ORDER BY id", primary=True)
    return [dict(row) for row in found]


async def test_a_click_goes_through_the_queue_into_the_table(service: Service) -> None:
    await service.signup_and_login()
    await service.create(slug="docs")
    link_id = await service.parts.db.fetchval(
        "SELECT id FROM links WHERE slug = 'docs'", primary=True
    )
    headers = {"referer": "https://news.example/item?id=1", "user-agent": "test-agent/1.0"}
    assert (await service.client.get("/r/docs", headers=headers)).status_code == 302
    assert await rows(service) == []  # not on the request path
    assert (await service.parts.queue.stats())["depth"] == 1

    async with draining(service.settings):
        await poll(lambda: _count(service, 1))
    [click] = await rows(service)
    assert (click["link_id"], click["referrer"], click["user_agent"]) == (
        link_id, "https://news.example/item?id=1", "test-agent/1.0"
    )  # fmt: skip
    assert await service.metric("rung_links_click_fallbacks_total") == 0


async def test_concurrent_clicks_share_round_trips_and_all_arrive_once(service: Service) -> None:
    await service.signup_and_login()
    await service.create(slug="docs")
    answers = await asyncio.gather(*(service.client.get("/r/docs") for _ in range(50)))
    assert [a.status_code for a in answers] == [302] * 50
    assert await service.metric("rung_links_clicks_queued_total") == 50
    async with draining(service.settings):
        await poll(lambda: _count(service, 50))
    assert len({row["id"] for row in await rows(service)}) == 50


async def test_a_404_or_410_records_no_click(service: Service) -> None:
    await service.signup_and_login()
    await service.create(slug="docs")
    await service.client.patch("/api/links/docs", json={"disabled": True})
    await service.client.get("/r/docs")
    await service.client.get("/r/nope")
    assert (await service.parts.queue.stats())["depth"] == 0


@asynccontextmanager
async def app_with(service: Service, **overrides: Any) -> AsyncIterator[Service]:
    settings = replace(service.settings, instance="fallback", **overrides)
    app = create_app(settings)
    async with AppClient(app, db=services(app).db) as client:
        yield Service(app, client, settings)


async def link_in_database(service: Service, slug: str) -> int:
    """A link written straight into the tables (the API needs sessions, which need the
    queue's Redis, which these tests take away)."""
    db = service.parts.db
    owner = await db.fetchval(
        "INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id", f"{slug}@x.io"
    )
    link_id: int = await db.fetchval(
        "INSERT INTO links (slug, target_url, owner_id) VALUES ($1, 'https://example.com', $2) "
        "RETURNING id",
        slug,
        owner,
    )
    return link_id


async def test_an_unreachable_queue_sends_clicks_straight_to_the_table(service: Service) -> None:
    async with app_with(service, queue_url="redis://127.0.0.1:1/0") as down:
        link_id = await link_in_database(down, "docs")
        for _ in range(2):  # the first meets the dead queue, the second skips it (cooldown)
            assert (await down.client.get("/r/docs")).status_code == 302
        assert [row["link_id"] for row in await rows(down)] == [link_id, link_id]
        assert await down.metric("rung_links_click_fallbacks_total") == 2
        assert await down.metric("rung_links_clicks_lost_total") == 0


async def test_a_hung_queue_sends_clicks_straight_to_the_table(
    service: Service, blackhole: str
) -> None:
    async with app_with(service, queue_url=blackhole) as hung:
        await link_in_database(hung, "docs")
        answers = await asyncio.gather(*(hung.client.get("/r/docs") for _ in range(5)))
        assert [a.status_code for a in answers] == [302] * 5
        assert len(await rows(hung)) == 5
        assert await hung.metric("rung_links_click_fallbacks_total") == 5


async def test_a_full_queue_sends_clicks_straight_to_the_table(service: Service) -> None:
    async with app_with(service, queue_max_depth=1) as full:
        await full.signup_and_login()
        await full.create(slug="docs")
        for _ in range(3):
            assert (await full.client.get("/r/docs")).status_code == 302
        assert len(await rows(full)) == 2  # the 2nd and 3rd: the queue held the 1st
        assert await full.metric("rung_links_click_fallbacks_total") == 2
        async with draining(full.settings):
            await poll(lambda: _count(full, 3))


async def test_a_click_both_queued_and_inserted_is_one_row(service: Service) -> None:
    """The fallback and the drain write the same id: a click that reached the queue after
    all (its put timed out on the way back) is still one row."""
    await service.signup_and_login()
    await service.create(slug="docs")
    link_id = await service.parts.db.fetchval(
        "SELECT id FROM links WHERE slug = 'docs'", primary=True
    )
    click = event(link_id, referrer=None, user_agent="ua")
    await service.parts.clicks._insert([click])  # what the fallback does
    await service.parts.queue.put(click)  # and the put that landed anyway
    async with draining(service.settings):
        await poll(lambda: _queue_empty(service))
    assert [str(row["id"]) for row in await rows(service)] == [click["id"]]


async def _count(service: Service, n: int) -> bool:
    return len(await rows(service)) == n


async def _queue_empty(service: Service) -> bool:
    return (await service.parts.queue.stats())["depth"] == 0
