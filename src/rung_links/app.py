"""The rung_links FastAPI app: `create_app(settings)`, and `app` for uvicorn.

    uvicorn rung_links.app:app                  # settings from the environment (settings.py)
    app = create_app(Settings(primary_url=..., cache_url=..., queue_url=..., secret=...))

Nothing connects at import or in `create_app`: the lifespan opens the database, applies
the migrations, opens the cache and starts the singleton jobs; shutdown closes them in
reverse. `app` is built on first access (a module `__getattr__`), so importing this module
for `create_app` needs no environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import rung
import rung.web
from rung_links import accounts, jobs, links, page, redirect, stats
from rung_links.clicks import ClickRecorder
from rung_links.metrics import Metrics
from rung_links.schema import migrate
from rung_links.services import Services
from rung_links.settings import Settings

log = logging.getLogger("rung_links")


def create_app(settings: Settings) -> FastAPI:
    """The service on `settings`; `services(app)` gives its parts (for tests and tools)."""
    db = rung.Database(settings.primary_url, settings.replica_urls, max_size=settings.db_pool,
                       max_lag=settings.max_lag, max_queries=settings.db_max_queries)  # fmt: skip
    cache = rung.Cache(settings.cache_url, namespace=settings.namespace, db=db,
                       default_ttl=settings.link_ttl, local_size=settings.near_cache)  # fmt: skip
    queue = rung.Queue(settings.queue_url, stream=settings.stream,
                       max_depth=settings.queue_max_depth)  # fmt: skip
    singleton = rung.Singleton(settings.queue_url, name=settings.namespace)
    metrics = Metrics()
    clicks = ClickRecorder(queue, db, metrics, cooldown=settings.queue_cooldown,
                           direct=settings.clicks == "direct")  # fmt: skip
    built = Services(settings, db, cache, queue, clicks, metrics)
    jobs.Jobs(built).schedule(singleton)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await db.open()
            stack.push_async_callback(db.close)
            applied = await migrate(db, instance=settings.instance, upto=settings.schema_version)
            if applied:
                log.info("%s: applied migrations %s", settings.instance, applied)
            await cache.open()
            stack.push_async_callback(cache.close)
            stack.push_async_callback(queue.close)
            stack.push_async_callback(clicks.close)
            stack.push_async_callback(singleton.close)
            if settings.jobs:
                task = asyncio.create_task(singleton.run(), name="rung-links-jobs")
                stack.push_async_callback(_cancel, task)
            log.info("%s: ready", settings.instance)
            yield

    app = FastAPI(
        title="rung links",
        summary="A link shortener with click analytics, built on rung.",
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.services = built
    # Inside rung.web's middleware (added next): the token, readiness and the drain's
    # "Connection: close" apply to the redirect too.
    app.add_middleware(
        _Edge,
        services=built,
        redis_url=settings.queue_url,  # sessions on the durable Redis: the cache Redis evicts
        secret=settings.secret,
        ttl=settings.session_ttl,
        prefix=f"{settings.namespace}:session",
        https_only=settings.secure_cookies,
    )
    web = rung.web.install(app, db=db, cache=cache, queue=queue, secret=settings.secret,
                           grace=settings.grace)  # fmt: skip
    metrics.register(web.registry)

    app.add_exception_handler(RequestValidationError, _invalid)
    app.include_router(accounts.routes(built))
    app.include_router(stats.routes(built))
    app.include_router(links.routes(built))
    app.include_router(redirect.routes(built))
    app.include_router(page.routes(settings.instance))
    return app


def services(app: FastAPI) -> Services:
    """What `create_app` built for `app`: settings, db, cache, queue, clicks, metrics."""
    built: Services = app.state.services
    return built


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    """422 with pydantic's errors, without the offending input: it may hold what JSON
    encodes but UTF-8 cannot (a lone surrogate), which would turn the 422 into a 500."""
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": [_printable(part) for part in error["loc"]], "msg": error["msg"],
         "type": error["type"]}
        for error in exc.errors()
    ]  # fmt: skip
    return _AsciiJSON({"detail": detail}, status_code=422)


def _printable(part: Any) -> str | int:
    return part if isinstance(part, int) else str(part).encode("utf-8", "replace").decode()


class _AsciiJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


class _Edge:
    """Where a request goes before FastAPI: `GET /r/...` to `redirect.serve` (no routing,
    no dependency injection, no session), `/api/...` through rung.SessionMiddleware, the
    rest (the page, the OpenAPI schema) straight to FastAPI. A logged-in visitor's click
    costs no Redis round trip to load a session it does not use. Every answer names the
    instance in a `Rung-Instance` header (which one answered, behind a balancer)."""

    def __init__(
        self, app: ASGIApp, *, services: Services, redis_url: str, secret: str, ttl: float,
        prefix: str, https_only: bool,
    ) -> None:  # fmt: skip
        self.app = app
        self.services = services
        self.instance = (b"rung-instance", services.settings.instance.encode())
        self.with_sessions = rung.SessionMiddleware(
            app, redis_url=redis_url, secret=secret, ttl=ttl, prefix=prefix, https_only=https_only
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path.startswith("/r/") and scope["method"] == "GET":
                await redirect.serve(self.services, scope, send, extra=self.instance)
            elif path.startswith("/api/"):
                await self.with_sessions(scope, receive, self._named(send))
            else:
                await self.app(scope, receive, self._named(send))
        elif scope["type"] == "lifespan":  # closes the session store at shutdown
            await self.with_sessions(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _named(self, send: Send) -> Send:
        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), self.instance]
            await send(message)

        return named


@functools.cache
def _default_app() -> FastAPI:
    return create_app(Settings.from_env())


def __getattr__(name: str) -> Any:
    if name == "app":  # `uvicorn rung_links.app:app`, `from rung_links.app import app`
        return _default_app()
    raise AttributeError(f"module 'rung_links.app' has no attribute {name!r}")
