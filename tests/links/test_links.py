"""Links through the HTTP contract: create, list, read, change, delete; who may do what;
and reading your own writes while every replica is stale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from rung.testing import AppClient
from tests.links.support import PASSWORD, Service

LINK_KEYS = {"slug", "target_url", "disabled", "created_at", "expires_at"}


async def test_create_answers_201_with_the_link(service: Service) -> None:
    await service.signup_and_login()
    expires = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    created = await service.client.post(
        "/api/links",
        json={"target_url": "https://example.com/docs", "slug": "docs",
              "expires_at": expires.isoformat()},
    )  # fmt: skip
    assert created.status_code == 201
    link = created.json()
    assert set(link) == LINK_KEYS
    assert (link["slug"], link["target_url"], link["disabled"]) == (
        "docs", "https://example.com/docs", False
    )  # fmt: skip
    assert datetime.fromisoformat(link["expires_at"]) == expires
    assert datetime.fromisoformat(link["created_at"]) <= datetime.now(UTC)


async def test_create_without_a_slug_chooses_one(service: Service) -> None:
    await service.signup_and_login()
    slug = await service.create()
    assert len(slug) == 7 and slug.isalnum()


async def test_create_with_a_taken_slug_is_409(service: Service) -> None:
    await service.signup_and_login()
    await service.create(slug="docs")
    taken = await service.client.post(
        "/api/links", json={"target_url": "https://example.com/other", "slug": "docs"}
    )
    assert (taken.status_code, taken.json()) == (409, {"detail": "slug 'docs' is taken"})


async def test_a_deleted_links_slug_stays_taken(service: Service) -> None:
    """Nobody can take over a deleted slug and send its old visitors elsewhere."""
    await service.signup_and_login()
    await service.create(slug="docs")
    assert (await service.client.delete("/api/links/docs")).status_code == 204
    again = await service.client.post(
        "/api/links", json={"target_url": "https://example.com/b", "slug": "docs"}
    )
    assert again.status_code == 409


async def test_writes_need_a_login(service: Service) -> None:
    calls = [
        ("POST", "/api/links", {"target_url": "https://example.com"}),
        ("GET", "/api/links", None),
        ("PATCH", "/api/links/docs", {"disabled": True}),
        ("DELETE", "/api/links/docs", None),
    ]
    for method, path, body in calls:
        answer = await service.client.request(method, path, json=body)
        assert (answer.status_code, answer.json()) == (401, {"detail": "log in first"}), path


async def test_list_shows_my_links_newest_first(service: Service) -> None:
    await service.signup_and_login("ann@example.com")
    for slug in ("one", "two", "three"):
        await service.create(slug=slug)
    await service.client.delete("/api/links/two")
    await service.client.post("/api/logout")
    await service.signup_and_login("bob@example.com")
    await service.create(slug="bobs")
    await service.client.post("/api/logout")
    await service.client.post("/api/login", json={"email": "ann@example.com", "password": PASSWORD})

    listed = await service.client.get("/api/links")
    assert listed.status_code == 200
    assert [link["slug"] for link in listed.json()["links"]] == ["three", "one"]
    assert all(set(link) == LINK_KEYS for link in listed.json()["links"])
    limited = await service.client.get("/api/links", params={"limit": 1})
    assert [link["slug"] for link in limited.json()["links"]] == ["three"]


async def test_read_answers_the_link_and_404_for_unknown_or_deleted(service: Service) -> None:
    await service.signup_and_login()
    await service.create("https://example.com/docs", slug="docs")
    read = await service.client.get("/api/links/docs")
    assert read.status_code == 200
    assert read.json()["target_url"] == "https://example.com/docs"

    assert (await service.client.get("/api/links/nope")).status_code == 404
    assert (await service.client.get("/api/links/bad%20slug")).json() == {"detail": "no such link"}
    await service.client.delete("/api/links/docs")
    assert (await service.client.get("/api/links/docs")).status_code == 404


async def test_patch_changes_the_target_and_the_disabled_flag(service: Service) -> None:
    await service.signup_and_login()
    await service.create("https://example.com/old", slug="docs")
    patched = await service.client.patch(
        "/api/links/docs", json={"target_url": "https://example.com/new"}
    )
    assert patched.status_code == 200
    assert patched.json()["target_url"] == "https://example.com/new"
    disabled = await service.client.patch("/api/links/docs", json={"disabled": True})
    assert (disabled.json()["disabled"], disabled.json()["target_url"]) == (
        True, "https://example.com/new"
    )  # fmt: skip
    assert (await service.client.get("/api/links/docs")).json()["disabled"] is True


async def test_someone_elses_link_is_403_and_an_unknown_one_404(service: Service) -> None:
    await service.signup_and_login("ann@example.com")
    await service.create(slug="docs")
    await service.client.post("/api/logout")
    await service.signup_and_login("bob@example.com")

    patch = await service.client.patch("/api/links/docs", json={"disabled": True})
    assert (patch.status_code, patch.json()) == (403, {"detail": "not your link"})
    delete = await service.client.delete("/api/links/docs")
    assert (delete.status_code, delete.json()) == (403, {"detail": "not your link"})
    assert (
        await service.client.patch("/api/links/nope", json={"disabled": True})
    ).status_code == 404
    assert (await service.client.delete("/api/links/nope")).status_code == 404
    assert (await service.client.get("/api/links/docs")).json()["disabled"] is False


async def test_delete_answers_204_then_404(service: Service) -> None:
    await service.signup_and_login()
    await service.create(slug="docs")
    deleted = await service.client.delete("/api/links/docs")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert (await service.client.delete("/api/links/docs")).status_code == 404
    assert (
        await service.client.patch("/api/links/docs", json={"disabled": True})
    ).status_code == 404


async def _without_token_cookie(request: httpx.Request) -> None:
    """The control's browser forgets the rung_lsn cookie: no token reaches the app."""
    pairs = [
        p
        for p in request.headers.get("cookie", "").split("; ")
        if p and not p.startswith("rung_lsn=")
    ]
    request.headers["cookie"] = "; ".join(pairs)


@pytest.mark.parametrize("carry_tokens", [True, False], ids=["tokens", "control"])
async def test_a_created_link_is_read_back_while_every_replica_is_stale(
    service: Service, stale_replicas: None, carry_tokens: bool
) -> None:
    """Create then list, read and redirect, with replay paused on every replica. The
    control carries no token (neither AppClient's nor the rung_lsn cookie) and shows the
    hazard is real: the list reads a stale replica and misses the link. The read and the
    redirect find it even then: the create invalidated `link:docs`, and the refill observes
    the token recorded with that invalidation."""
    hooks = {} if carry_tokens else {"request": [_without_token_cookie]}
    client = AppClient(service.app, db=service.parts.db, carry_tokens=carry_tokens,
                       lifespan=False, event_hooks=hooks)  # fmt: skip
    async with client:
        body = {"email": "ann@example.com", "password": PASSWORD}
        assert (await client.post("/api/signup", json=body)).status_code == 201
        assert (await client.post("/api/login", json=body)).status_code == 200
        created = await client.post(
            "/api/links", json={"target_url": "https://example.com/docs", "slug": "docs"}
        )
        assert created.status_code == 201
        listed = [link["slug"] for link in (await client.get("/api/links")).json()["links"]]
        assert listed == (["docs"] if carry_tokens else [])
        assert (await client.get("/api/links/docs")).status_code == 200
        redirect = await client.get("/r/docs")
        assert (redirect.status_code, redirect.headers["location"]) == (
            302, "https://example.com/docs"
        )  # fmt: skip


async def test_a_change_is_read_back_while_every_replica_is_stale(
    service: Service, stale_replicas: None
) -> None:
    await service.signup_and_login()
    await service.create("https://example.com/old", slug="docs")
    await service.client.patch("/api/links/docs", json={"target_url": "https://example.com/new"})
    assert (await service.client.get("/api/links/docs")).json()["target_url"] == (
        "https://example.com/new"
    )
    listed = (await service.client.get("/api/links")).json()["links"]
    assert [link["target_url"] for link in listed] == ["https://example.com/new"]
