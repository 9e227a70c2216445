"""The singleton jobs: expire links, roll up daily stats; fenced by their tokens."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from rung.testing import AppClient
from rung_links.app import create_app, services
from rung_links.jobs import Jobs
from tests.helpers import poll
from tests.links.support import Service, clicks_on, expired_link, token


async def test_expire_disables_links_past_their_expiry_and_invalidates(service: Service) -> None:
    await service.signup_and_login()
    await expired_link(service, "old")
    await service.create(
        slug="live", expires_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat()
    )
    await service.create(slug="forever")
    assert (await service.client.get("/api/links/old")).json()["disabled"] is False  # cached

    jobs = Jobs(service.parts)
    assert await jobs.expire_links(await token(service)) == 1
    assert (await service.client.get("/api/links/old")).json()["disabled"] is True
    assert (await service.client.get("/api/links/live")).json()["disabled"] is False
    assert (await service.client.get("/r/old")).status_code == 410
    assert await jobs.expire_links(await token(service)) == 0


async def test_a_stale_fencing_token_is_refused(service: Service) -> None:
    """A holder that lost its lease and wakes up later cannot run behind the new one."""
    await service.signup_and_login()
    jobs = Jobs(service.parts)
    older, newer = await token(service), await token(service)
    assert await jobs.expire_links(newer) == 0
    await expired_link(service, "old")
    assert await jobs.expire_links(older) == 0  # refused: nothing disabled
    assert (await service.client.get("/api/links/old")).json()["disabled"] is False
    assert await jobs.roll_up(older) == 0
    assert await jobs.expire_links(newer) == 1


async def test_the_expire_job_runs_by_itself_on_one_of_two_instances(service: Service) -> None:
    await service.signup_and_login()
    await expired_link(service, "old")
    settings = replace(service.settings, jobs=True, expire_every=0.2)
    apps = [create_app(replace(settings, instance=f"app{i}")) for i in (1, 2)]
    async with (
        AppClient(apps[0], db=services(apps[0]).db),
        AppClient(apps[1], db=services(apps[1]).db),
    ):

        async def disabled() -> bool:
            return bool(await service.parts.db.fetchval(
                "SELECT disabled FROM links WHERE slug = 'old'", primary=True
            ))  # fmt: skip

        await poll(disabled, within=5.0)
    fence = await service.parts.db.fetchval(
        "SELECT token FROM job_fences WHERE job = 'expire_links'", primary=True
    )
    assert fence > 0


async def test_roll_up_counts_each_day_once_however_often_it_runs(service: Service) -> None:
    await service.signup_and_login()
    await service.create(slug="docs")
    link_id = await service.parts.db.fetchval(
        "SELECT id FROM links WHERE slug = 'docs'", primary=True
    )
    today = datetime.now(UTC).date()
    for days_ago, n in ((3, 2), (1, 1), (0, 2)):
        await clicks_on(service, link_id, today - timedelta(days=days_ago), n)

    jobs = Jobs(service.parts)
    assert await jobs.roll_up(await token(service)) == 3
    assert await jobs.roll_up(await token(service)) == 0  # counts, not increments
    rolled = await service.parts.db.fetch(
        "SELECT day, clicks FROM link_daily_stats ORDER BY day", primary=True
    )
    assert [(r["day"], r["clicks"]) for r in rolled] == [
        (today - timedelta(days=3), 2), (today - timedelta(days=1), 1), (today, 2)
    ]  # fmt: skip

    await clicks_on(service, link_id, today, 1)
    assert await jobs.roll_up(await token(service)) == 1  # today's row, recounted
