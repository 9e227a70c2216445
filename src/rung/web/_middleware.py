"""The consistency-token middleware: read-your-writes across instances over HTTP.

    app.add_middleware(rung.web.TokenMiddleware, db=db, secret=SECRET)

A request's token comes in from the cookie `rung_lsn` or the header `Rung-LSN` (the later
of the two valid ones) and the request runs under `db.observe(token)`. When the request's
writes advanced the token, the response carries the new one out in both. So a write
through instance A followed by a read through instance B reads its own write, whatever the
replicas' lag, and a cache refill observes the same token.

It is a pure ASGI middleware on purpose: it runs the app in its own task and context, so
it sees the token the endpoint's write produced. A `BaseHTTPMiddleware` (or
`@app.middleware("http")`) runs the endpoint in another task and never does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rung._options import seconds
from rung.db import Database, Token
from rung.state._asgi import ASGIApp, Message, Receive, Scope, Send, cookies
from rung.web._tokens import sign, verify

COOKIE = "rung_lsn"
HEADER = "Rung-LSN"
_HEADER = HEADER.lower().encode()


class TokenMiddleware:
    """Carries `db`'s consistency token in and out of each HTTP request (see the module
    docstring). `secret` signs it; a token older than `max_age` seconds (default: a minute,
    or twice `db.max_lag` if longer) is ignored, as is anything malformed or forged."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        db: Database,
        secret: str | bytes,
        max_age: float | None = None,
        secure_cookie: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.db = db
        self._secret = check_secret(secret)
        default = max(60.0, 2 * db.max_lag)
        self._max_age = seconds("max_age", default if max_age is None else max_age, positive=True)
        self._attributes = f"; Path=/; Max-Age={int(self._max_age)}; HttpOnly; SameSite=Lax"
        if secure_cookie:
            self._attributes += "; Secure"
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = self.incoming(scope)
        db = self.db

        async def send_with_token(message: Message) -> None:
            if message["type"] == "http.response.start":
                token = db.token()
                if token is not None and token != incoming:  # this request's writes
                    message["headers"] = [*message.get("headers", ()), *self._outgoing(token)]
            await send(message)

        with db.observe(incoming):
            await self.app(scope, receive, send_with_token)

    def incoming(self, scope: Scope) -> str | None:
        """The later of the valid tokens in the request's cookie and header, else None."""
        now, secret, max_age = self._clock(), self._secret, self._max_age
        header = next((v for k, v in scope.get("headers", ()) if k == _HEADER), None)
        cookie = cookies(scope).get(COOKIE)
        return Token.merge(
            verify(header, secret, now=now, max_age=max_age),
            verify(cookie.encode("latin-1") if cookie else None, secret, now=now, max_age=max_age),
        )

    def _outgoing(self, token: str) -> list[tuple[bytes, bytes]]:
        value = sign(token, self._secret, now=self._clock())
        return [
            (b"set-cookie", f"{COOKIE}={value}{self._attributes}".encode()),
            (_HEADER, value.encode()),
        ]


def check_secret(secret: str | bytes) -> bytes:
    """`secret` as bytes; `ValueError` when it is too short to sign with."""
    raw = secret.encode() if isinstance(secret, str) else secret
    if len(raw) < 16:
        raise ValueError("secret must be at least 16 bytes (rung up writes a 32-byte one)")
    return raw
