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
expiry `ttl` seconds out (rolling). A cookie that is tampered with, expired, unknown or
malformed in any way (non-ASCII bytes, oversized, bad base64) gives a fresh, empty session,
never an error: it is checked as bytes, before anything else reads it.

A session id, once dead, stays dead. A loaded session is written back by a Lua script that
writes only if the id it was loaded under still exists, so a slower request that loaded the
session before a logout (or before a `regenerate()` retired its id) cannot bring it back:
its write is dropped and its response sets no cookie. If Redis cannot be reached, the
response is 503 with Retry-After: a request is never run with a session that silently lost
its data. Use the durable Redis (the stack's `queue_url`): the cache Redis evicts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import secrets
from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson

from rung._options import seconds
from rung._redis import Store
from rung.errors import RungError
from rung.state._asgi import ASGIApp, Message, Receive, Scope, Send, cookies

log = logging.getLogger("rung.sessions")

_UNAVAILABLE = b"session store unavailable, retry shortly"
_MAX_TTL = 400 * 86_400.0  # browsers cap a cookie's Max-Age at 400 days (RFC 6265bis)
_MAX_COOKIE = 128  # bytes; ours are 87 (a 43-byte id, ".", a 43-byte MAC): longer is forged

# KEYS: the id the session was loaded under, the id to write it under (the same one, or a
# new one after regenerate())   ARGV: the data, the TTL in seconds
# -> 1 written; 0 the loaded id is dead (logged out, regenerated or expired since the
# request loaded it), so nothing is written: no request can bring a dead id back.
_SAVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
if KEYS[2] ~= KEYS[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


class _StoreDown(RungError):
    """The session Redis did not answer in time: the middleware answers 503 (never raised
    to the app)."""


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
    same on every instance), `ttl` seconds of inactivity before a session ends (1 s to 400
    days), `cookie_name`, `prefix` of the Redis keys, `https_only` for the Secure flag,
    `timeout` seconds that bound each Redis call in total.
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
        if seconds("ttl", ttl, positive=True, most=_MAX_TTL) < 1:
            raise ValueError(f"ttl must be at least 1 second, not {ttl!r}")
        if not cookie_name or any(c in cookie_name for c in ' =;,"\t\r\n'):
            raise ValueError(f"cookie_name must be a cookie name token, not {cookie_name!r}")
        self.app = app
        self._key = hashlib.sha256(secret.encode()).digest()
        self._ttl = math.ceil(ttl)  # Redis counts whole seconds; never end a session early
        self._cookie = cookie_name
        self._prefix = prefix
        self._flags = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if https_only else "")
        self._store = Store(redis_url, timeout=seconds("timeout", timeout, positive=True),
                            unavailable=_StoreDown, rejected=RungError)  # fmt: skip
        self._save_script = self._store.redis.register_script(_SAVE)

    async def close(self) -> None:
        """Close the Redis connections (done for you at the app's lifespan shutdown)."""
        await self._store.close()

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
        except _StoreDown as e:
            log.warning("session store unreachable: %s", e)
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
                except _StoreDown as e:
                    log.warning("session store unreachable: %s", e)
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
        key = self._redis_key(sid)
        raw = await self._store.run(lambda r: r.getex(key, ex=self._ttl), idempotent=True)
        if raw is None:
            return Session()  # expired, logged out or unknown: a fresh session (a new id)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return Session()
        return Session(data if isinstance(data, dict) else {}, sid)

    async def _save(self, session: Session) -> bytes | None:
        """Write what changed; the Set-Cookie header to send, if any."""
        if session.cleared:
            if session.sid is not None:
                dead = self._redis_key(session.sid)
                await self._store.run(lambda r: r.delete(dead), idempotent=True)
            return f"{self._cookie}=; Max-Age=0{self._flags}".encode()
        sid = session.sid
        if session.modified:
            data = orjson.dumps(dict(session))
            if sid is None:  # a new session: a fresh random id nobody else can hold
                sid = secrets.token_urlsafe(32)
                key = self._redis_key(sid)
                await self._store.run(lambda r: r.set(key, data, ex=self._ttl), idempotent=True)
            else:
                target = secrets.token_urlsafe(32) if session.regenerated else sid
                if not await self._write(sid, target, data):
                    # Another request logged out or regenerated this session while this
                    # one ran. Its cookie (expired, or the new id) must win: send none.
                    log.info("session write dropped: a concurrent request retired its id")
                    return None
                sid = target
        if sid is None:
            return None  # a new session nobody wrote to: no cookie, nothing stored
        # Sent again on every response: the cookie rolls with the data's expiry.
        return f"{self._cookie}={self._sign(sid)}; Max-Age={self._ttl}{self._flags}".encode()

    async def _write(self, loaded: str, target: str, data: bytes) -> bool:
        """Write `data` under `target` (deleting `loaded` if it differs), only if `loaded`
        still exists; whether it was written."""
        keys = [self._redis_key(loaded), self._redis_key(target)]
        written = await self._store.run(
            lambda r: self._save_script(keys=keys, args=[data, self._ttl], client=r),
            idempotent=loaded == target,  # run twice, a move would find its source gone
        )
        return bool(written)

    def _redis_key(self, sid: str) -> str:
        return f"{self._prefix}:{sid}"

    def _sign(self, sid: str) -> str:
        return self._signed(sid.encode()).decode()

    def _signed(self, sid: bytes) -> bytes:
        mac = hmac.new(self._key, sid, hashlib.sha256).digest()
        return sid + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")

    def _verify(self, cookie: str | None) -> str | None:
        """The session id of a well-signed cookie, else None. Compared as bytes: a cookie
        is whatever bytes the client sent (uvicorn passes bytes >= 0x80 through), and
        hmac.compare_digest raises TypeError on a str that is not ASCII."""
        if not cookie:
            return None
        # cookies() decodes latin-1, so this gives back the header's bytes exactly.
        raw = cookie.encode("latin-1", "replace")
        if len(raw) > _MAX_COOKIE:
            return None
        sid, dot, _ = raw.rpartition(b".")
        if not dot or not sid or not hmac.compare_digest(self._signed(sid), raw):
            return None
        return sid.decode("ascii", "replace")  # we signed it: always our ASCII id


async def _unavailable(send: Send) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"1"),
        (b"content-length", str(len(_UNAVAILABLE)).encode()),
    ]})  # fmt: skip
    await send({"type": "http.response.body", "body": _UNAVAILABLE})
