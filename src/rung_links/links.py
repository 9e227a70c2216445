"""Links: create, list, read, change, delete; and the cached record the redirect serves.

    link = await lookup(services, "docs")     # the cached record, or None for an unknown slug

Writes run in `db.transaction()` on the primary and invalidate `link:{slug}` after commit
(`db.after_commit(cache.invalidate, ...)`): the next read on any instance refills from a
node that has the write (the invalidation carries the consistency token). A slug is taken
by the unique constraint (`ON CONFLICT (slug) DO NOTHING`), never by check-then-insert.
A deleted link keeps its row and its slug (the redirect answers 410, and nobody can take
the slug over to send old links somewhere else).
"""

from __future__ import annotations

import secrets
import string
import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response

from rung_links.accounts import CurrentUser
from rung_links.models import SLUG, Link, LinkIn, LinkList, LinkPatch, errors
from rung_links.services import Services

_FIELDS = "slug, target_url, disabled, created_at, expires_at"

LOAD = """
SELECT id, slug, target_url, owner_id, disabled, created_at, expires_at,
       deleted_at IS NOT NULL AS deleted
FROM links WHERE slug = $1
"""
INSERT = f"""
INSERT INTO links (slug, target_url, owner_id, expires_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (slug) DO NOTHING
RETURNING {_FIELDS}
"""
MINE = f"""
SELECT {_FIELDS} FROM links
WHERE owner_id = $1 AND deleted_at IS NULL
ORDER BY created_at DESC, id DESC LIMIT $2
"""
LOCK = "SELECT id, owner_id FROM links WHERE slug = $1 AND deleted_at IS NULL FOR UPDATE"
UPDATE = f"""
UPDATE links SET target_url = coalesce($2, target_url), disabled = coalesce($3, disabled)
WHERE id = $1
RETURNING {_FIELDS}
"""
DELETE = "UPDATE links SET deleted_at = now() WHERE id = $1"

_ALPHABET = string.ascii_letters + string.digits
_GENERATED_LENGTH = 7  # 62**7: a collision (retried) is rare until billions of links


def key(slug: str) -> str:
    """The cache key of a slug's record."""
    return f"link:{slug}"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def load(services: Services, slug: str) -> dict[str, Any] | None:
    """The record of `slug` from the database (a replica, unless the token says otherwise):
    what the cache keeps. `expires` is the expiry as a Unix time, for the redirect."""
    row = await services.db.fetchrow(LOAD, slug)
    if row is None:
        return None
    expires_at = row["expires_at"]
    return {
        "id": row["id"],
        "slug": row["slug"],
        "target_url": row["target_url"],
        "owner_id": row["owner_id"],
        "disabled": row["disabled"],
        "deleted": row["deleted"],
        "created_at": _iso(row["created_at"]),
        "expires_at": _iso(expires_at),
        "expires": None if expires_at is None else expires_at.timestamp(),
    }


async def lookup(services: Services, slug: str) -> dict[str, Any] | None:
    """The cached record of `slug` (None: no such link; an unknown slug is cached too, and
    creating it invalidates that)."""
    result: dict[str, Any] | None = await services.cached(
        key(slug), lambda: load(services, slug), ttl=services.settings.link_ttl
    )
    return result


def gone(record: dict[str, Any]) -> bool:
    """Disabled, deleted or past its expiry: the redirect answers 410."""
    expires = record["expires"]
    return bool(
        record["disabled"] or record["deleted"] or (expires is not None and expires <= time.time())
    )


def _no_link(slug: str) -> HTTPException:
    return HTTPException(404, f"no link {slug!r}" if SLUG.fullmatch(slug) else "no such link")


def routes(services: Services) -> APIRouter:
    """The /api/links routes on `services`."""
    router = APIRouter(prefix="/api/links", tags=["links"])
    db, cache = services.db, services.cache

    @router.post("", status_code=201, responses=errors(400, 401, 409))
    async def create_link(body: LinkIn, user: CurrentUser) -> Link:
        """Create a link; a slug is chosen for you when the body has none."""
        tries = [body.slug] if body.slug else [_new_slug() for _ in range(5)]
        for slug in tries:
            async with db.transaction():
                row = await db.fetchrow(INSERT, slug, body.target_url, user.id, body.expires_at)
                if row is not None:  # an unknown slug may be cached as such
                    db.after_commit(cache.invalidate, key(slug))
            if row is not None:
                return Link.model_validate(dict(row))
        if body.slug:
            raise HTTPException(409, f"slug {body.slug!r} is taken")
        raise HTTPException(409, "no free slug found; try again or choose one")

    @router.get("", responses=errors(401))
    async def my_links(
        user: CurrentUser, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> LinkList:
        """My links, newest first."""
        rows = await db.fetch(MINE, user.id, limit)
        return LinkList(links=[Link.model_validate(dict(row)) for row in rows])

    @router.get("/{slug}", responses=errors(404))
    async def read_link(slug: str) -> Link:
        """One link (deleted links are gone: 404)."""
        record = await lookup(services, slug) if SLUG.fullmatch(slug) else None
        if record is None or record["deleted"]:
            raise _no_link(slug)
        return Link.model_validate(record)

    async def _lock_owned(slug: str, user_id: int) -> int:
        """Inside a transaction: lock `slug`'s row and return its id; 404 when there is no
        such link, 403 when it is not the user's."""
        owned = await db.fetchrow(LOCK, slug) if SLUG.fullmatch(slug) else None
        if owned is None:
            raise _no_link(slug)
        if owned["owner_id"] != user_id:
            raise HTTPException(403, "not your link")
        link_id: int = owned["id"]
        return link_id

    @router.patch("/{slug}", responses=errors(400, 401, 403, 404))
    async def change_link(slug: str, body: LinkPatch, user: CurrentUser) -> Link:
        """Change the target or disable (re-enable) a link: redirects follow at once."""
        async with db.transaction():
            owned = await _lock_owned(slug, user.id)
            row = await db.fetchrow(UPDATE, owned, body.target_url, body.disabled)
            db.after_commit(cache.invalidate, key(slug))
        assert row is not None  # the row is locked: it is there
        return Link.model_validate(dict(row))

    @router.delete("/{slug}", status_code=204, response_class=Response,
                   responses=errors(401, 403, 404))  # fmt: skip
    async def delete_link(slug: str, user: CurrentUser) -> Response:
        """Delete a link: its redirect answers 410 from now on, and its slug stays taken."""
        async with db.transaction():
            await db.execute(DELETE, await _lock_owned(slug, user.id))
            db.after_commit(cache.invalidate, key(slug))
        return Response(status_code=204)

    return router


def _new_slug() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(_GENERATED_LENGTH))
