"""`GET /r/{slug}`: the hot path. The link comes from the cache (a replica on a miss), the
click goes to the queue, and the answer is a 302.

    GET /r/docs  ->  302 Location: https://example.com/docs

404 for a slug no link has, 410 for a link disabled, deleted or past its expiry: both are
cached like a live link and invalidated by the writes, so a PATCH to disabled or a DELETE
stops the redirect at once. Expiry is checked against the clock at each redirect, so it is
exact without waiting for the expire job.

`serve` answers it as a plain ASGI app that app.py puts in front of FastAPI: FastAPI's
routing and dependency injection cost several times what the rest of a cached redirect does
(docs/links.md). The FastAPI route below serves the same `answer` and keeps the path in
the OpenAPI schema. No session is loaded for it: a logged-in visitor's click costs what an
anonymous one does.
"""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.types import Scope, Send

import rung
from rung_links import links
from rung_links.models import SLUG, Error
from rung_links.services import Services

log = logging.getLogger("rung_links.redirect")

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]

_JSON = (b"content-type", b"application/json")
_UNKNOWN: Answer = (404, [_JSON], b'{"detail":"no such link"}')
_GONE: Answer = (410, [_JSON], b'{"detail":"this link is disabled, deleted or expired"}')
_RETRY_AFTER_S = b"1"


async def answer(
    services: Services, slug: str, *, referrer: str | None, user_agent: str | None,
    request_id: str | None = None,
) -> Answer:  # fmt: skip
    """Status, headers and body for `GET /r/{slug}`; records the click of a 302."""
    if not SLUG.fullmatch(slug):
        return _UNKNOWN
    record = await links.lookup(services, slug)
    if record is None:
        return _UNKNOWN
    if links.gone(record):
        return _GONE
    await services.clicks.record(
        record["id"], referrer=referrer, user_agent=user_agent, request_id=request_id
    )
    return 302, [(b"location", record["target_url"].encode())], b""


async def serve(
    services: Services, scope: Scope, send: Send, *, extra: tuple[bytes, bytes]
) -> None:
    """Answer `GET /r/{slug}` (with the header `extra`); a GET has no body to receive. A
    database the cache miss cannot reach is a 503 with Retry-After, as rung.web answers it
    on every other route."""
    referrer = user_agent = request_id = None
    for name, value in scope["headers"]:
        if name == b"referer":
            referrer = value.decode("latin-1")
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")
        elif name == b"x-rung-request":  # HAProxy's, the last one: see clicks.event
            request_id = value.decode("latin-1")
    try:
        status, headers, body = await answer(
            services, scope["path"][3:], referrer=referrer, user_agent=user_agent,
            request_id=request_id,
        )  # fmt: skip
    except rung.DatabaseError as e:
        log.warning("redirect: the database cannot serve the link: %r", e)
        body = json.dumps({"error": type(e).__name__, "detail": str(e)}).encode()
        status, headers = 503, [_JSON, (b"retry-after", _RETRY_AFTER_S)]
    headers = [*headers, (b"content-length", str(len(body)).encode()), extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def routes(services: Services) -> APIRouter:
    """The redirect route on `services` (app.py answers it before FastAPI; see above)."""
    router = APIRouter(tags=["redirect"])

    @router.get(
        "/r/{slug}",
        status_code=302,
        response_class=Response,
        responses={
            302: {"description": "Redirect to the link's target (Location header)"},
            404: {"model": Error, "description": "No such link"},
            410: {"model": Error, "description": "Disabled, deleted or expired"},
        },
    )
    async def redirect(slug: str, request: Request) -> Response:
        """Redirect to the link's target and count the click."""
        headers = request.headers
        status, raw, body = await answer(
            services, slug, referrer=headers.get("referer"), user_agent=headers.get("user-agent"),
            request_id=next(reversed(headers.getlist("x-rung-request")), None),
        )  # fmt: skip
        return Response(body, status_code=status, headers={k.decode(): v.decode() for k, v in raw})

    return router
