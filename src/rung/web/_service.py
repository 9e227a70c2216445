"""What an instance behind a load balancer answers besides the app: `/healthz`, `/readyz`,
`/metrics`, and a graceful drain on SIGTERM. A pure ASGI middleware, so the paths work in
front of any app and stay out of its OpenAPI schema.

The drain: uvicorn, on SIGTERM, stops accepting at once, so a balancer that has not yet
noticed sends the next request to a closed port. Here SIGTERM first turns `/readyz` to 503
and asks clients to close their connections; the instance keeps serving for `grace`
seconds (the balancer's checks take it out meanwhile), then hands the signal to the server,
which finishes the requests in flight and exits 0.
"""

from __future__ import annotations

import asyncio
import signal
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry

from rung.db import Database
from rung.state._asgi import ASGIApp, Message, Receive, Scope, Send
from rung.web._metrics import Stats, exposition

_JSON = [(b"content-type", b"application/json")]
_PROMETHEUS = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]


class Service:
    """`/healthz` (the process answers), `/readyz` (200 while the primary answers and the
    instance is not draining, else 503), `/metrics` (Prometheus text) and the SIGTERM
    drain, in front of `app`."""

    def __init__(self, app: ASGIApp, *, db: Database | None, stats: Stats,
                 registry: CollectorRegistry, grace: float) -> None:  # fmt: skip
        self.app = app
        self.draining = False
        self._db = db
        self._stats = stats
        self._registry = registry
        self._grace = grace
        self._routes = {"/healthz": self._healthz, "/readyz": self._readyz,
                        "/metrics": self._metrics}  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self._routes.get(scope["path"])
        if route is not None and scope["method"] in ("GET", "HEAD"):
            status, headers, body = await route()
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if self.draining:  # ask the client (the balancer) to reconnect elsewhere
            await self.app(scope, receive, _closing(send))
            return
        await self.app(scope, receive, send)

    async def _healthz(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return 200, _JSON, b'{"status":"ok"}'

    async def _readyz(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if self.draining:
            return 503, _JSON, b'{"status":"draining"}'
        # The monitor polls the primary every ~100 ms: its verdict, not another query.
        if self._db is not None and not self._db.stats()["primary"]["healthy"]:
            return 503, _JSON, b'{"status":"primary unreachable"}'
        return 200, _JSON, b'{"status":"ready"}'

    async def _metrics(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        await self._stats.refresh()
        return 200, _PROMETHEUS, exposition(self._registry)

    # --- the drain -------------------------------------------------------------------------

    def _lifespan_send(self, send: Send) -> Send:
        async def on_started(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                self._take_sigterm()
            await send(message)

        return on_started

    def _take_sigterm(self) -> None:
        """Put the drain in front of the server's own SIGTERM handler (uvicorn installs it
        before the lifespan starts). Outside the main thread there is nothing to take."""
        loop = asyncio.get_running_loop()
        try:
            server_handler = signal.getsignal(signal.SIGTERM)

            def on_sigterm(signum: int, frame: FrameType | None) -> None:
                loop.call_soon_threadsafe(self._drain, server_handler, signum, frame)

            signal.signal(signal.SIGTERM, on_sigterm)
        except ValueError:  # not the main thread: a test client, or an embedded server
            return

    def _drain(self, server_handler: Any, signum: int, frame: FrameType | None) -> None:
        if self.draining:  # a second SIGTERM: stop now
            _hand_over(server_handler, signum, frame)
            return
        self.draining = True
        asyncio.get_running_loop().call_later(
            self._grace, _hand_over, server_handler, signum, frame
        )


def _hand_over(server_handler: Any, signum: int, frame: FrameType | None) -> None:
    server = getattr(server_handler, "__self__", None)
    if hasattr(server, "should_exit"):
        # uvicorn's Server: ask it to stop gracefully. Its own handler would also record the
        # signal and raise it again once stopped, so the process would die by SIGTERM
        # instead of exiting 0 after a clean drain.
        server.should_exit = True  # type: ignore[union-attr]
        return
    if callable(server_handler):
        server_handler(signum, frame)
        return
    signal.signal(signal.SIGTERM, server_handler)  # the default: die as asked
    signal.raise_signal(signal.SIGTERM)


def _closing(send: Send) -> Send:
    async def with_close(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
        await send(message)

    return with_close
