"""The whole system as a user meets it: `rung up --instances 2 --workers 1`, rung_links
behind HAProxy, exercised over HTTP through `app_url` (and each instance's own port where
a test must pick the instance)."""

import asyncio
import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rung.stack import Stack
from rung.testing import RungStack
from tests.helpers import poll

# What the instances read from the environment rung up hands them (see rung_links.settings).
ENV = {"RUNG_LINKS_STATS_TTL": "1", "RUNG_LINKS_MAX_LAG": "600", "RUNG_GRACE": "1.5"}


@pytest.fixture(scope="module")
def system() -> Iterator[RungStack]:
    """A stack of its own: two replicas, PgBouncer, both Redis, two rung_links instances
    behind HAProxy and one drain worker."""
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)
    workdir = Path(tempfile.mkdtemp(prefix="rung-system-"))
    workdir.chmod(0o755)
    stack = Stack(workdir / "stack")
    try:
        result = stack.up(replicas=2, instances=2, workers=1)
        yield RungStack(stack, result.stack)
    finally:
        stack.down(purge=True)
        shutil.rmtree(workdir, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def instance_url(system: RungStack, name: str) -> str:
    return f"http://127.0.0.1:{system.ports[name]}"


@pytest.fixture
async def user(system: RungStack) -> AsyncIterator[httpx.AsyncClient]:
    """A signed-up, logged-in browser on app_url (its cookie jar keeps the session and the
    consistency token)."""
    assert system.app_url is not None
    email, password = f"u{secrets.token_hex(4)}@example.com", "correct horse battery"
    async with httpx.AsyncClient(base_url=system.app_url, timeout=10) as client:
        signed = await client.post("/api/signup", json={"email": email, "password": password})
        assert signed.status_code == 201, signed.text
        logged = await client.post("/api/login", json={"email": email, "password": password})
        assert logged.status_code == 200, logged.text
        yield client


def clicks_of(system: RungStack, slug: str) -> int:
    """The rows in `clicks` for link `slug`, on the primary."""
    return int(system.sql("primary", "SELECT count(*) FROM clicks JOIN links "
                          f"ON links.id = clicks.link_id WHERE links.slug = '{slug}'"))  # fmt: skip


async def new_link(client: httpx.AsyncClient, target: str = "https://example.com/x") -> str:
    made = await client.post("/api/links", json={"target_url": target})
    assert made.status_code == 201, made.text
    slug: str = made.json()["slug"]
    return slug


async def test_signup_login_link_redirect_and_stats_through_haproxy(
    user: httpx.AsyncClient,
) -> None:
    slug = await new_link(user, "https://example.com/target")
    assert (await user.get("/api/me")).status_code == 200
    hop = await user.get(f"/r/{slug}")
    assert hop.status_code == 302
    assert hop.headers["location"] == "https://example.com/target"
    stats = await user.get(f"/api/links/{slug}/stats")
    assert stats.status_code == 200 and stats.json()["slug"] == slug
    assert [link["slug"] for link in (await user.get("/api/links")).json()["links"]] == [slug]


async def test_a_link_made_on_one_instance_is_read_on_the_other_with_the_token(
    system: RungStack, user: httpx.AsyncClient
) -> None:
    """Every replica paused: a link created through app1 is read through app2, 100 of 100
    times, when the request carries the cookie or the header app1 returned; a garbage
    token is ignored, never an error."""
    cookies = dict(user.cookies)
    for i in range(len(system.replica_urls)):
        system.pause_replay(i)
    try:
        async with (
            httpx.AsyncClient(base_url=instance_url(system, "app1"), cookies=cookies) as a,
            httpx.AsyncClient(base_url=instance_url(system, "app2")) as b,
        ):
            for n in range(100):
                made = await a.post("/api/links", json={"target_url": f"https://e.com/{n}"})
                assert made.status_code == 201, made.text
                slug, token = made.json()["slug"], made.headers["rung-lsn"]
                by_header = await b.get(f"/api/links/{slug}", headers={"Rung-LSN": token})
                assert by_header.status_code == 200, (n, by_header.text)
                by_cookie = await b.get(f"/r/{slug}", headers={"cookie": f"rung_lsn={token}"})
                assert by_cookie.status_code == 302, (n, by_cookie.text)
            for text in ("garbage", "0/FFFFFFFF", token[:-2] + "xx", "é🙂" * 30):
                garbage = text.encode()  # as raw bytes: what uvicorn passes through
                headers = {"Rung-LSN": garbage, "cookie": b"rung_lsn=" + garbage}
                read = await b.get(f"/api/links/{slug}", headers=headers)
                assert read.status_code == 200, read.text  # ignored, never an error
    finally:
        for i in range(len(system.replica_urls)):
            system.resume_replay(i)


async def test_a_disabled_link_is_gone_on_both_instances_at_once(
    system: RungStack, user: httpx.AsyncClient
) -> None:
    slug = await new_link(user)
    for name in ("app1", "app2"):  # cached on both
        async with httpx.AsyncClient(base_url=instance_url(system, name)) as direct:
            assert (await direct.get(f"/r/{slug}")).status_code == 302
    patched = await user.patch(f"/api/links/{slug}", json={"disabled": True})
    assert patched.status_code == 200 and patched.json()["disabled"] is True
    for name in ("app1", "app2"):
        async with httpx.AsyncClient(base_url=instance_url(system, name)) as direct:
            assert (await direct.get(f"/r/{slug}")).status_code == 410


async def test_a_thousand_redirects_are_a_thousand_clicks(
    system: RungStack, user: httpx.AsyncClient
) -> None:
    slug = await new_link(user)
    for _ in range(1000):
        assert (await user.get(f"/r/{slug}")).status_code == 302
    await poll(lambda: clicks_of(system, slug) == 1000, within=60)

    async def stats_show_them() -> bool:
        return (await user.get(f"/api/links/{slug}/stats")).json()["clicks"] == 1000

    await poll(stats_show_them, within=30)


async def test_metrics_parse_and_show_every_rung(system: RungStack) -> None:
    async with httpx.AsyncClient(base_url=instance_url(system, "app1")) as direct:
        text = (await direct.get("/metrics")).text
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"rung_db_queries", "rung_cache_hits", "rung_queue_depth"} <= names


async def _sequential_load(system: RungStack, slug: str, cookies: dict[str, str], n: int,
                           at: int, fault: object) -> list[int]:  # fmt: skip
    """`n` sequential requests through app_url (a redirect and /api/me in turn); at
    request `at`, `fault()` runs. The statuses that were not what they should be."""
    assert system.app_url is not None
    failed: list[int] = []
    async with httpx.AsyncClient(base_url=system.app_url, cookies=cookies, timeout=10) as c:
        for i in range(n):
            if i == at:
                fault()  # type: ignore[operator]
            if i % 2:
                status = (await c.get("/api/me")).status_code
                failed += [status] if status != 200 else []
            else:
                status = (await c.get(f"/r/{slug}")).status_code
                failed += [status] if status != 302 else []
    return failed


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
async def test_an_instance_killed_or_stopped_under_load_fails_no_request(
    system: RungStack, user: httpx.AsyncClient, sig: signal.Signals
) -> None:
    """2,000 sequential requests through HAProxy; app1 gets SIGKILL or SIGTERM at 200: no
    request fails, the session keeps working; SIGTERM's instance exits 0."""
    slug = await new_link(user)
    record = system.stack.running()
    assert record is not None
    app1 = record.get("app1")
    assert app1 is not None and app1.proc is not None
    pid = app1.proc.pid

    def fault() -> None:
        os.kill(pid, sig)

    try:
        failed = await _sequential_load(system, slug, dict(user.cookies), 2000, 200, fault)
        assert failed == []
        if sig == signal.SIGTERM:  # drained and stopped cleanly, not killed
            log = await asyncio.to_thread(Path(app1.log).read_text)
            assert "Finished server process" in log and "Traceback" not in log
    finally:
        await asyncio.to_thread(system.stack.up, replicas=2, instances=2, workers=1)


async def test_redirects_work_with_the_cache_redis_stopped(
    system: RungStack, user: httpx.AsyncClient
) -> None:
    slug = await new_link(user)
    await asyncio.to_thread(system.stop, "cache")
    try:
        for _ in range(20):
            assert (await user.get(f"/r/{slug}")).status_code == 302
    finally:
        await asyncio.to_thread(system.start, "cache")


async def test_no_click_is_lost_with_the_queue_redis_stopped(
    system: RungStack, user: httpx.AsyncClient
) -> None:
    """Redirects go on; each click lands, through the direct-insert fallback or after the
    queue is back."""
    slug = await new_link(user)
    await asyncio.to_thread(system.stop, "queue")
    try:
        for _ in range(50):
            assert (await user.get(f"/r/{slug}")).status_code == 302
    finally:
        await asyncio.to_thread(system.start, "queue")
    for _ in range(50):
        assert (await user.get(f"/r/{slug}")).status_code == 302
    await poll(lambda: clicks_of(system, slug) == 100, within=60)


async def test_a_request_sent_again_is_one_click(
    system: RungStack, user: httpx.AsyncClient
) -> None:
    """HAProxy gives each request an X-Rung-Request id, the same on a retry of it: an
    instance that sees one id twice (the first instance died after queueing the click)
    writes one click. A client's own X-Rung-Request is dropped at HAProxy."""
    slug = await new_link(user)
    replayed = {"X-Rung-Request": "4f1c2b9e-replayed-request"}
    async with httpx.AsyncClient(base_url=instance_url(system, "app2")) as direct:
        for _ in range(2):
            assert (await direct.get(f"/r/{slug}", headers=replayed)).status_code == 302
    for _ in range(2):  # through HAProxy: two requests, two ids
        assert (await user.get(f"/r/{slug}", headers=replayed)).status_code == 302
    await poll(lambda: clicks_of(system, slug) == 3, within=60)
