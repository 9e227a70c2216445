"""`GET /api/links/{slug}/stats`: past days from the rollup, today from `clicks`; cached
for `stats_ttl` (tolerably stale), while a deleted link's stats are gone at once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from rung.testing import AppClient
from rung_links.app import create_app, services
from rung_links.jobs import Jobs
from tests.helpers import poll
from tests.links.support import Service, clicks_on, token


async def test_stats_of_a_new_link_are_zero(service: Service) -> None:
    await service.signup_and_login()
    await service.create(slug="docs")
    stats = await service.client.get("/api/links/docs/stats")
    assert (stats.status_code, stats.json()) == (200, {"slug": "docs", "clicks": 0, "daily": []})


async def test_stats_of_an_unknown_or_deleted_link_are_404(service: Service) -> None:
    await service.signup_and_login()
    await service.create(slug="docs")
    assert (await service.client.get("/api/links/docs/stats")).status_code == 200  # cached
    await service.client.delete("/api/links/docs")
    for path in ("/api/links/docs/stats", "/api/links/nope/stats", "/api/links/x%20y/stats"):
        answer = await service.client.get(path)
        assert (answer.status_code, answer.json()) == (404, {"detail": "no such link"}), path


async def test_stats_after_the_rollup_show_each_day_and_today(service: Service) -> None:
    await service.signup_and_login()
    await service.create(slug="docs")
    link_id = await service.parts.db.fetchval(
        "SELECT id FROM links WHERE slug = 'docs'", primary=True
    )
    today = datetime.now(UTC).date()
    for days_ago, n in ((2, 3), (1, 1), (0, 2)):
        await clicks_on(service, link_id, today - timedelta(days=days_ago), n)
    await Jobs(service.parts).roll_up(await token(service))

    stats = (await service.client.get("/api/links/docs/stats")).json()
    assert stats == {
        "slug": "docs",
        "clicks": 6,
        "daily": [
            {"day": (today - timedelta(days=2)).isoformat(), "clicks": 3},
            {"day": (today - timedelta(days=1)).isoformat(), "clicks": 1},
            {"day": today.isoformat(), "clicks": 2},
        ],
    }


async def test_todays_clicks_count_before_any_rollup(service: Service) -> None:
    await service.signup_and_login()
    await service.create(slug="docs")
    link_id = await service.parts.db.fetchval(
        "SELECT id FROM links WHERE slug = 'docs'", primary=True
    )
    await clicks_on(service, link_id, datetime.now(UTC).date(), 4)
    assert (await service.client.get("/api/links/docs/stats")).json()["clicks"] == 4


async def test_stats_are_cached_until_their_ttl(service: Service) -> None:
    """Tolerably stale: a click after a read shows once the entry expires, not at once."""
    settings = replace(service.settings, stats_ttl=3.0, instance="short-ttl")
    app = create_app(settings)
    async with AppClient(app, db=services(app).db) as client:
        short = Service(app, client, settings)
        await short.signup_and_login()
        await short.create(slug="docs")
        link_id = await short.parts.db.fetchval(
            "SELECT id FROM links WHERE slug = 'docs'", primary=True
        )
        assert (await client.get("/api/links/docs/stats")).json()["clicks"] == 0
        await clicks_on(short, link_id, datetime.now(UTC).date(), 1)
        assert (await client.get("/api/links/docs/stats")).json()["clicks"] == 0  # cached

        async def counted() -> bool:
            return (await client.get("/api/links/docs/stats")).json()["clicks"] == 1

        await poll(counted, within=15.0)
