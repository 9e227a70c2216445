"""What the rung_links tests share: a database of their own, settings on it, and a client
for the app in this process (rung.testing.AppClient: a fresh context per request, the
consistency token carried from one to the next)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

import rung
from rung.testing import AppClient, RungStack
from rung_links.app import services
from rung_links.services import Services
from rung_links.settings import Settings

SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"
TABLES = ("clicks", "link_daily_stats", "links", "users", "job_fences")


@contextlib.contextmanager
def scratch_database(rung_stack: RungStack, prefix: str) -> Iterator[str]:
    """A new, empty database on the stack's primary (on every replica too), dropped after."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    rung_stack.sql("primary", f"CREATE DATABASE {name}")
    rung_stack.wait_for_replicas()
    try:
        yield name
    finally:
        rung_stack.sql("primary", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def on_database(url: str, name: str) -> str:
    """`url` with its database replaced by `name`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def settings_on(rung_stack: RungStack, database: str, **overrides: Any) -> Settings:
    """Settings on `database` of the stack, with a namespace and a stream nobody else uses
    (so no cached value, session, singleton tick or queued click leaks between tests)."""
    tag = secrets.token_hex(4)
    settings = Settings(
        primary_url=on_database(rung_stack.primary_url, database),
        replica_urls=tuple(on_database(u, database) for u in rung_stack.replica_urls),
        cache_url=rung_stack.cache_url,
        queue_url=rung_stack.queue_url,
        secret=SECRET,
        instance=f"test-{tag}",
        namespace=f"lt{tag}",
        stream=f"lt{tag}-clicks",
        jobs=False,  # tests run the jobs themselves, with tokens they hold
        max_lag=60.0,  # stale_replicas pauses replay: keep those replicas serving reads
    )
    return replace(settings, **overrides)


def forget(settings: Settings) -> None:
    """Delete what `settings`' namespace and stream left in both Redis servers."""
    for url, patterns in (
        (settings.cache_url, [f"{settings.namespace}:*"]),
        (settings.queue_url, [f"{settings.namespace}:*", f"{settings.stream}*",
                              f"rung:singleton:{settings.namespace}:*"]),
    ):  # fmt: skip
        client = redis.Redis.from_url(url)
        try:
            for pattern in patterns:
                keys = list(client.scan_iter(match=pattern, count=1000))
                if keys:
                    client.delete(*keys)
        finally:
            client.close()


@dataclass
class Service:
    """The app, its parts and a client that behaves like a browser."""

    app: FastAPI
    client: AppClient
    settings: Settings

    @property
    def parts(self) -> Services:
        return services(self.app)

    async def signup_and_login(self, email: str = "ann@example.com") -> None:
        created = await self.client.post("/api/signup", json={"email": email, "password": PASSWORD})
        assert created.status_code == 201, created.text
        login = await self.client.post("/api/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text

    async def create(self, target_url: str = "https://example.com/a", **fields: Any) -> str:
        """A new link; its slug."""
        created = await self.client.post("/api/links", json={"target_url": target_url, **fields})
        assert created.status_code == 201, created.text
        slug: str = created.json()["slug"]
        return slug

    async def metric(self, name: str) -> float:
        """The value of the sample `name` on /metrics."""
        text = (await self.client.get("/metrics")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    return float(sample.value)
        raise AssertionError(f"no sample {name} on /metrics")


async def token(service: Service) -> int:
    """A fresh fencing token of the app's singleton (higher than any before it)."""
    singleton = rung.Singleton(service.settings.queue_url, name=service.settings.namespace)
    try:
        async with singleton.leadership() as fencing_token:
            return fencing_token
    finally:
        await singleton.close()


async def expired_link(service: Service, slug: str) -> None:
    """A link whose expiry has passed (the API only takes future ones)."""
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    await service.create(slug=slug, expires_at=soon)
    await service.parts.db.execute(
        "UPDATE links SET expires_at = now() - interval '1 minute' WHERE slug = $1", slug
    )


async def clicks_on(service: Service, link_id: int, day: date, n: int) -> None:
    at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)
    if day == datetime.now(UTC).date():
        at = datetime.now(UTC)
    await service.parts.db.execute(
        "INSERT INTO clicks (id, link_id, clicked_at) "
        "SELECT gen_random_uuid(), $1, $2 FROM generate_series(1, $3)",
        link_id,
        at,
        n,
    )
