"""rung.SessionMiddleware: sessions in Redis behind a signed cookie, so any instance can
serve any request.

    app.add_middleware(rung.SessionMiddleware, redis_url=queue_url, secret=SECRET, ttl=3600.0)

    async def login(request):
        ...
        request.session.regenerate()          # new id, same data: no session fixation
        request.session["user_id"] = user.id

    async def logout(request):
        request.session.clear()               # data deleted, cookie expired

The cookie holds only an opaque random id and its HMAC-SHA256 signature (HttpOnly,
SameSite=Lax, Path=/, Secure with `https_only`). The data is orjson in Redis under
`{prefix}:{id}`, read with GETEX, so every request that uses the session pushes its
expiry `ttl` seconds out (rolling). A cookie that is tampered with, expired or unknown
gives a fresh, empty session, never an error. If Redis cannot be reached, the response is
503 with Retry-After: a request is never run with a session that silently lost its data.
Use the durable Redis (the stack's `queue_url`): the cache Redis evicts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from rung.state.asgi import ASGIApp, Message, Receive, Scope, Send, cookies

log = logging.getLogger("rung.sessions")

_UNAVAILABLE = b"session store unavailable, retry shortly"


class Session(MutableMapping[str, Any]):
    """`request.session`: a dict-like mapping saved after the response is produced.
    Assign to save: a change inside a nested value (`session["cart"].append(x)`) is not
    seen; write `session["cart"] = cart` instead."""

    def __init__(self, data: dict[str, Any] | None = None, sid: str | None = None) -> None:
        self._data = data or {}
        self.sid = sid  # the id it was loaded under (None: new)
        self.modified = False
        self.regenerated = False
        self.cleared = False

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"session keys are strings, not {type(key).__name__}")
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError as e:  # fail here, where the bug is, not at save
            raise TypeError(f"session[{key!r}] must be JSON-serializable: {e}") from e
        self._data[key] = value
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self.modified = True

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def regenerate(self) -> None:
        """Keep the data under a new id and delete the old one (call it on login)."""
        self.regenerated = True
        self.modified = True

    def clear(self) -> None:
        """Delete the session: its data in Redis and the cookie (call it on logout)."""
        self._data.clear()
        self.cleared = True
        self.modified = True


class SessionMiddleware:
    """ASGI middleware that puts a Redis-backed `Session` in `scope["session"]`, where
    Starlette's `request.session` finds it (see the module docstring).

    Keyword-only: `redis_url` (the durable Redis), `secret` (at least 32 characters; the
    same on every instance), `ttl` seconds of inactivity before a session ends,
    `cookie_name`, `prefix` of the Redis keys, `https_only` for the Secure flag.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        redis_url: str,
        secret: str,
        ttl: float = 3600.0,
        cookie_name: str = "rung_session",
        prefix: str = "rung:session",
        https_only: bool = False,
        timeout: float = 1.0,
    ) -> None:
        if len(secret) < 32:
            raise ValueError("secret must be at least 32 characters (e.g. secrets.token_hex(32))")
        if ttl < 1:
            raise ValueError("ttl must be at least 1 second")
        self.app = app
        self._key = hashlib.sha256(secret.encode()).digest()
        self._ttl = int(ttl)
        self._cookie = cookie_name
        self._prefix = prefix
        self._flags = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if https_only else "")
        self._redis = Redis.from_url(redis_url, socket_timeout=timeout,
                                     socket_connect_timeout=timeout)  # fmt: skip

    async def close(self) -> None:
        """Close the Redis connections (done for you at the app's lifespan shutdown)."""
        await self._redis.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":

            async def receive_closing() -> Message:
                message = await receive()
                if message["type"] == "lifespan.shutdown":
                    await self.close()
                return message

            await self.app(scope, receive_closing, send)
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            session = await self._load(cookies(scope).get(self._cookie))
        except RedisError as e:
            log.warning("session store unreachable: %r", e)
            await _unavailable(send)
            return
        scope["session"] = session
        aborted = False

        async def send_with_session(message: Message) -> None:
            nonlocal aborted
            if aborted:
                return  # the 503 went out instead; the app's response goes nowhere
            if message["type"] == "http.response.start":
                try:
                    header = await self._save(session)
                except RedisError as e:
                    log.warning("session store unreachable: %r", e)
                    aborted = True
                    await _unavailable(send)
                    return
                if header is not None:
                    message = {**message, "headers": [*message.get("headers", ()),
                                                      (b"set-cookie", header)]}  # fmt: skip
            await send(message)

        await self.app(scope, receive, send_with_session)

    # --- the store ------------------------------------------------------------------------

    async def _load(self, cookie: str | None) -> Session:
        sid = self._verify(cookie)
        if sid is None:
            return Session()
        raw = await self._redis.getex(self._redis_key(sid), ex=self._ttl)
        if raw is None:
            return Session()  # expired or unknown: a fresh session (under a new id)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return Session()
        return Session(data if isinstance(data, dict) else {}, sid)

    async def _save(self, session: Session) -> bytes | None:
        """Write what changed; the Set-Cookie header to send, if any."""
        if session.cleared:
            if session.sid is not None:
                await self._redis.delete(self._redis_key(session.sid))
            return f"{self._cookie}=; Max-Age=0{self._flags}".encode()
        sid = session.sid
        if session.modified:
            if sid is None or session.regenerated:
                sid = secrets.token_urlsafe(32)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._redis_key(sid), orjson.dumps(dict(session)), ex=self._ttl)
                if session.sid is not None and session.sid != sid:
                    pipe.delete(self._redis_key(session.sid))
                await pipe.execute()
        if sid is None:
            return None  # a new session nobody wrote to: no cookie, nothing stored
        # Sent again on every response: the cookie rolls with the data's expiry.
        return f"{self._cookie}={self._sign(sid)}; Max-Age={self._ttl}{self._flags}".encode()

    def _redis_key(self, sid: str) -> str:
        return f"{self._prefix}:{sid}"

    def _sign(self, sid: str) -> str:
        mac = hmac.new(self._key, sid.encode(), hashlib.sha256).digest()
        return f"{sid}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

    def _verify(self, cookie: str | None) -> str | None:
        """The session id of a well-signed cookie, else None."""
        if not cookie or "." not in cookie:
            return None
        sid, _, _ = cookie.rpartition(".")
        if not sid or not hmac.compare_digest(self._sign(sid), cookie):
            return None
        return sid


async def _unavailable(send: Send) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"1"),
        (b"content-length", str(len(_UNAVAILABLE)).encode()),
    ]})  # fmt: skip
    await send({"type": "http.response.body", "body": _UNAVAILABLE})
