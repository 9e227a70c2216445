"""`rung.web.install`: the middleware, endpoints and handlers that make an app an instance
rung can run behind a balancer (see the `rung.web` docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from rung._options import seconds
from rung.cache import Cache
from rung.db import Database
from rung.queue import Queue
from rung.web._errors import RETRY_AFTER, unavailable
from rung.web._metrics import Stats
from rung.web._middleware import TokenMiddleware, check_secret
from rung.web._service import Service


@dataclass
class Web:
    """What `install` set up: `registry` is the prometheus_client registry `/metrics`
    serves (register the app's own metrics there); `draining` turns True on SIGTERM."""

    registry: CollectorRegistry
    _service: list[Service]

    @property
    def draining(self) -> bool:
        return any(s.draining for s in self._service)


def install(
    app: Any,
    *,
    db: Database | None = None,
    cache: Cache | None = None,
    queue: Queue | None = None,
    secret: str | bytes,
    grace: float = 2.0,
    max_age: float | None = None,
    secure_cookie: bool = False,
) -> Web:
    """Make `app` (Starlette or FastAPI, before it starts) an instance rung can run behind a
    balancer (see the module docstring). `grace`: seconds an instance keeps serving after
    SIGTERM while `/readyz` says 503. `max_age`, `secure_cookie`: see `TokenMiddleware`."""
    grace = seconds("grace", grace, most=600.0)
    check_secret(secret)  # here, not when the app first builds its middleware
    registry = CollectorRegistry(auto_describe=True)
    stats = Stats(db=db, cache=cache, queue=queue)
    registry.register(stats)
    services: list[Service] = []

    def service(inner: Any, **_: Any) -> Service:
        built = Service(inner, db=db, stats=stats, registry=registry, grace=grace)
        services.append(built)
        return built

    if db is not None:
        app.add_middleware(TokenMiddleware, db=db, secret=secret, max_age=max_age,
                           secure_cookie=secure_cookie)  # fmt: skip
    app.add_middleware(service)  # outermost: health and metrics need no token
    for kind in RETRY_AFTER:
        app.add_exception_handler(kind, unavailable)
    return Web(registry, services)
