"""rung.SessionMiddleware against the real stack's durable Redis: two app objects share
sessions, regenerate() rotates the id, tampering gives an empty session, logout deletes,
a dead id stays dead under racing requests, hostile cookie bytes give a fresh session."""

import asyncio
import contextlib
import functools
import math
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import rung
from rung.testing import RungStack

SECRET = secrets.token_hex(32)


async def visit(request: Request) -> Response:
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JSONResponse(dict(request.session))


async def login(request: Request) -> Response:
    request.session.regenerate()
    request.session["user"] = (await request.json())["user"]
    return JSONResponse({"ok": True})


async def me(request: Request) -> Response:
    return JSONResponse(dict(request.session))


async def logout(request: Request) -> Response:
    request.session.clear()
    return Response(status_code=204)


@dataclass
class Gate:
    """Holds one /slow request after its session is loaded, until the test lets it write."""

    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    proceed: asyncio.Event = field(default_factory=asyncio.Event)
    saw: dict[str, Any] = field(default_factory=dict)


GATES: dict[str, Gate] = {}


async def slow(request: Request) -> Response:
    """Loads the session, waits at its gate, then writes (`?then=write`) or logs in again
    (`?then=regenerate`)."""
    gate = GATES[request.query_params["gate"]]
    gate.saw = dict(request.session)
    gate.loaded.set()
    await gate.proceed.wait()
    if request.query_params["then"] == "regenerate":
        request.session.regenerate()
    request.session["late"] = True
    return JSONResponse({"ok": True})


def make_app(
    redis_url: str, prefix: str, middleware: type = rung.SessionMiddleware, **options: object
) -> Starlette:
    routes = [Route("/visit", visit, methods=["POST"]), Route("/login", login, methods=["POST"]),
              Route("/me", me), Route("/logout", logout, methods=["POST"]),
              Route("/slow", slow, methods=["POST"])]  # fmt: skip
    options = {"redis_url": redis_url, "secret": SECRET, "prefix": prefix, **options}
    return Starlette(routes=routes, middleware=[Middleware(middleware, **options)])


@pytest.fixture
def prefix() -> str:
    return f"test:session:{secrets.token_hex(4)}"


@contextlib.asynccontextmanager
async def instances(
    redis_url: str, prefix: str, middleware: type = rung.SessionMiddleware
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two separate app objects (two instances) on one Redis; cookies are passed by hand
    (each client's cookie jar is emptied after every response)."""
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=make_app(redis_url, prefix, middleware)),
            base_url="http://test",
        )
        for _ in range(2)
    ]
    for c in clients:
        c.event_hooks["response"] = [functools.partial(forget_cookies, c)]
    try:
        yield clients[0], clients[1]
    finally:
        for c in clients:
            await close_sessions(c)


async def forget_cookies(client: httpx.AsyncClient, _: httpx.Response) -> None:
    client.cookies.clear()


@pytest.fixture
async def two_instances(
    rung_stack: RungStack, prefix: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with instances(rung_stack.queue_url, prefix) as pair:
        yield pair


async def close_sessions(client: httpx.AsyncClient) -> None:
    """Close the client, and the Redis connections of the app's SessionMiddleware (an app
    served by uvicorn gets this at lifespan shutdown)."""
    app = client._transport.app  # type: ignore[attr-defined]
    layer = getattr(app, "middleware_stack", None)
    while layer is not None:
        if isinstance(layer, rung.SessionMiddleware):
            await layer.close()
        layer = getattr(layer, "app", None)
    await client.aclose()


def session_cookie(response: httpx.Response) -> str:
    header = response.headers["set-cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header
    return header.split(";")[0].split("=", 1)[1]


def with_cookie(value: str) -> dict[str, str]:
    return {"cookie": f"rung_session={value}"}


async def test_a_login_on_one_instance_is_seen_by_the_other(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = two_instances
    response = await a.post("/login", json={"user": "ann"})
    cookie = session_cookie(response)
    seen = await b.get("/me", headers=with_cookie(cookie))
    assert seen.status_code == 200
    assert seen.json() == {"user": "ann"}


async def test_regenerate_keeps_the_data_under_a_new_id_and_kills_the_old_one(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = two_instances
    before = session_cookie(await a.post("/visit"))
    after = session_cookie(
        await a.post("/login", json={"user": "ann"}, headers=with_cookie(before))
    )
    assert after.split(".")[0] != before.split(".")[0]
    assert (await b.get("/me", headers=with_cookie(after))).json() == {"visits": 1, "user": "ann"}
    assert (await b.get("/me", headers=with_cookie(before))).json() == {}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # a forged signature
        lambda c: "x" + c,  # another id, the old signature
        lambda c: c.split(".")[0],  # no signature
        lambda c: "garbage",
        lambda c: "",
    ],
)
async def test_a_tampered_cookie_gives_an_empty_session_and_a_200(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient], tamper: object
) -> None:
    a, b = two_instances
    cookie = session_cookie(await a.post("/login", json={"user": "ann"}))
    forged = tamper(cookie)  # type: ignore[operator]
    response = await b.get("/me", headers=with_cookie(forged))
    assert response.status_code == 200
    assert response.json() == {}


async def test_logout_deletes_the_data_and_expires_the_cookie(
    rung_stack: RungStack, two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient], prefix: str
) -> None:
    a, b = two_instances
    cookie = session_cookie(await a.post("/login", json={"user": "ann"}))
    sid = cookie.rsplit(".", 1)[0]
    async with aioredis.Redis.from_url(rung_stack.queue_url) as r:
        assert await r.exists(f"{prefix}:{sid}") == 1
        out = await b.post("/logout", headers=with_cookie(cookie))
        assert out.status_code == 204
        assert "Max-Age=0" in out.headers["set-cookie"]
        assert await r.exists(f"{prefix}:{sid}") == 0
    assert (await a.get("/me", headers=with_cookie(cookie))).json() == {}


async def test_every_request_pushes_the_expiry_out(
    rung_stack: RungStack, two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient], prefix: str
) -> None:
    a, b = two_instances
    cookie = session_cookie(await a.post("/login", json={"user": "ann"}))
    key = f"{prefix}:{cookie.rsplit('.', 1)[0]}"
    async with aioredis.Redis.from_url(rung_stack.queue_url) as r:
        await r.expire(key, 5)
        response = await b.get("/me", headers=with_cookie(cookie))
        assert await r.ttl(key) > 3000
        assert "Max-Age=3600" in response.headers["set-cookie"]  # the cookie rolls too


async def test_no_cookie_and_no_data_means_nothing_stored_and_no_cookie(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, _ = two_instances
    response = await a.get("/me")
    assert response.json() == {}
    assert "set-cookie" not in response.headers


async def test_an_unreachable_session_store_answers_503_not_500() -> None:
    app = make_app("redis://127.0.0.1:1/0", "x", timeout=0.2)
    signer = rung.SessionMiddleware(app, redis_url="redis://127.0.0.1:1/0", secret=SECRET)
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    try:
        loading = await c.get("/me", headers=with_cookie(signer._sign("abc")))
        saving = await c.post("/visit")
    finally:
        await close_sessions(c)
        await signer.close()
    for response in (loading, saving):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        rung.SessionMiddleware(make_app("redis://x", "p"), redis_url="redis://x", secret="short")


def test_a_value_json_cannot_hold_fails_where_it_is_assigned() -> None:
    from rung.state import Session

    session = Session()
    with pytest.raises(TypeError, match=r"session\['when'\] must be JSON-serializable"):
        session["when"] = object()
    with pytest.raises(TypeError, match="session keys are strings"):
        session[1] = "x"  # type: ignore[index]
    assert not session.modified


# --- a dead id stays dead -----------------------------------------------------------------


class UnguardedSessions(rung.SessionMiddleware):
    """The control: the save before the fix, which wrote any id it was given."""

    async def _write(self, loaded: str, target: str, data: bytes) -> bool:
        async def write(r: aioredis.Redis) -> bool:
            async with r.pipeline(transaction=True) as pipe:
                pipe.set(self._redis_key(target), data, ex=self._ttl)
                if target != loaded:
                    pipe.delete(self._redis_key(loaded))
                await pipe.execute()
            return True

        return await self._store.run(write)


@dataclass
class Round:
    loaded: dict[str, Any]  # what the slow request loaded
    dead_before_write: bool  # the old id was gone from Redis before the slow request wrote
    old_id_back: bool  # the old id exists in Redis after the slow request
    old_cookie_sees: dict[str, Any]  # what a request with the old cookie gets afterwards
    late_set_cookie: str | None  # what the slow response told the browser
    new_cookie: str | None  # after a racing login: its cookie


async def race(
    a: httpx.AsyncClient, b: httpx.AsyncClient, r: aioredis.Redis, prefix: str, *,
    fast: str, then: str,
) -> Round:  # fmt: skip
    """Log in; a slow request on `b` loads the session; the `fast` request ("logout" or
    "login") runs to completion on `a`; then the slow one writes (`then`)."""
    cookie = session_cookie(await a.post("/login", json={"user": "ann"}))
    old_key = f"{prefix}:{cookie.rsplit('.', 1)[0]}"
    name = secrets.token_hex(8)
    gate = GATES[name] = Gate()
    late = asyncio.create_task(
        b.post(f"/slow?gate={name}&then={then}", headers=with_cookie(cookie))
    )
    async with asyncio.timeout(10):  # a safety net: the app signals once it has loaded
        await gate.loaded.wait()
    new_cookie = None
    if fast == "logout":
        assert (await a.post("/logout", headers=with_cookie(cookie))).status_code == 204
    else:
        relogin = await a.post("/login", json={"user": "ann"}, headers=with_cookie(cookie))
        new_cookie = session_cookie(relogin)
    dead_before_write = await r.exists(old_key) == 0
    gate.proceed.set()
    response = await late
    assert response.status_code == 200
    del GATES[name]
    return Round(
        loaded=gate.saw,
        dead_before_write=dead_before_write,
        old_id_back=await r.exists(old_key) == 1,
        old_cookie_sees=(await a.get("/me", headers=with_cookie(cookie))).json(),
        late_set_cookie=response.headers.get("set-cookie"),
        new_cookie=new_cookie,
    )


async def races(
    url: str, prefix: str, middleware: type, *, fast: str, then: str, rounds: int
) -> list[Round]:
    async with instances(url, prefix, middleware) as (a, b), aioredis.Redis.from_url(url) as r:
        return [await race(a, b, r, prefix, fast=fast, then=then) for _ in range(rounds)]


def real_races(played: list[Round]) -> int:
    """Rounds where the hazard was set up: the slow request loaded the logged-in session,
    and the fast request had killed its id before the slow one wrote."""
    return sum(p.loaded == {"user": "ann"} and p.dead_before_write for p in played)


async def test_a_logout_racing_a_slower_request_stays_logged_out(
    rung_stack: RungStack, prefix: str
) -> None:
    """100 rounds: a request that loaded the session before the logout and writes after it
    brings nothing back, and its response sends no cookie over the logout's."""
    played = await races(rung_stack.queue_url, prefix, rung.SessionMiddleware,
                         fast="logout", then="write", rounds=100)  # fmt: skip
    assert real_races(played) == 100
    assert [p.old_id_back for p in played] == [False] * 100
    assert [p.old_cookie_sees for p in played] == [{}] * 100
    assert [p.late_set_cookie for p in played] == [None] * 100


async def test_a_regenerate_racing_a_slower_request_leaves_the_old_id_dead(
    rung_stack: RungStack, prefix: str
) -> None:
    """100 rounds: a login (regenerate) while a slower request holds the old id; the slow
    write does not bring the old id back, nor land in the new one."""
    played = await races(rung_stack.queue_url, prefix, rung.SessionMiddleware,
                         fast="login", then="write", rounds=100)  # fmt: skip
    assert real_races(played) == 100
    assert [p.old_id_back for p in played] == [False] * 100
    assert [p.old_cookie_sees for p in played] == [{}] * 100
    async with instances(rung_stack.queue_url, prefix) as (a, _):
        now = [(await a.get("/me", headers=with_cookie(p.new_cookie or ""))).json() for p in played]
    assert now == [{"user": "ann"}] * 100


async def test_a_slower_login_after_a_logout_brings_the_data_back_under_no_id(
    rung_stack: RungStack, prefix: str
) -> None:
    """The slow request regenerates after the logout: nothing is written under any id."""
    played = await races(rung_stack.queue_url, prefix, rung.SessionMiddleware,
                         fast="logout", then="regenerate", rounds=20)  # fmt: skip
    assert real_races(played) == 20
    assert [p.late_set_cookie for p in played] == [None] * 20
    async with aioredis.Redis.from_url(rung_stack.queue_url) as r:
        assert [key async for key in r.scan_iter(f"{prefix}:*")] == []


@pytest.mark.parametrize("fast", ["logout", "login"])
async def test_the_control_without_the_guard_the_slower_request_revives_the_old_id(
    rung_stack: RungStack, prefix: str, fast: str
) -> None:
    """The hazard is real: with the unconditional save the slow write brings the dead id
    back (logged in again after a logout; the old id alive after a regenerate)."""
    played = await races(rung_stack.queue_url, prefix, UnguardedSessions,
                         fast=fast, then="write", rounds=100)  # fmt: skip
    assert real_races(played) == 100
    assert [p.old_id_back for p in played] == [True] * 100
    assert [p.old_cookie_sees for p in played] == [{"user": "ann", "late": True}] * 100


# --- hostile cookies ----------------------------------------------------------------------


async def asgi_get(app: Starlette, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[
    int, dict[bytes, bytes], bytes
]:  # fmt: skip
    """Call the ASGI app with a hand-built scope (headers as raw bytes, as a server passes
    them); its status, headers and body."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": "POST" if path == "/visit" else "GET", "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 50000), "server": ("test", 80),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start.get("headers", [])), body


SID = b"k" * 43  # an id shaped like ours


HOSTILE: dict[str, bytes] = {
    "bytes >= 0x80": bytes(range(0x80, 0x100)),
    "a real-looking id, a signature of bytes >= 0x80": SID + b"." + b"\xe9" * 43,
    "bytes >= 0x80 in the id, a signature": b"\xc3\xa9" * 20 + b"." + b"A" * 43,
    "emoji": "🍪🍪🍪.🔑".encode(),
    "100 kB of data": b"A" * 50_000 + b"." + b"B" * 50_000,
    "100 kB of bytes >= 0x80": b"\xff" * 100_000,
    "bad base64": SID + b".!!not*base64$$",
    "a wrong signature": SID + b"." + b"A" * 43,
    "no signature": SID,
    "only a dot": b".",
    "empty": b"",
    "NUL and control bytes": b"\x00\x01\x1b" + SID + b".\x00",
}


@pytest.fixture
async def one_app(rung_stack: RungStack, prefix: str) -> AsyncIterator[Starlette]:
    app = make_app(rung_stack.queue_url, prefix)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    yield app
    await close_sessions(client)


async def test_the_raw_scope_harness_reaches_the_session(one_app: Starlette) -> None:
    """The control for the hostile cookies: through the same raw scope, a real cookie
    loads its session."""
    status, headers, _ = await asgi_get(one_app, "/visit", [])
    cookie = headers[b"set-cookie"].split(b";")[0]
    status, _, body = await asgi_get(one_app, "/me", [(b"cookie", cookie)])
    assert (status, body) == (200, b'{"visits":1}')


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
async def test_a_hostile_cookie_gives_a_fresh_session_and_a_200(
    one_app: Starlette, value: bytes
) -> None:
    """Through the raw ASGI scope: a read gets an empty session, a write a new one."""
    header = [(b"cookie", b"other=1; rung_session=" + value + b"; x=y")]
    assert await asgi_get(one_app, "/me", header) == (200, _json_headers(b"2"), b"{}")
    status, headers, body = await asgi_get(one_app, "/visit", header)
    assert (status, body) == (200, b'{"visits":1}')
    fresh = headers[b"set-cookie"].split(b";")[0].removeprefix(b"rung_session=")
    assert fresh != value and len(fresh) == 87


@pytest.mark.parametrize(
    "header",
    [b"rung_session", b";;;;", b"=\xff", b"rung_session=\xff\xfe; rung_session=x", b"\xff" * 8192],
)
async def test_a_malformed_cookie_header_gives_an_empty_session(
    one_app: Starlette, header: bytes
) -> None:
    assert await asgi_get(one_app, "/me", [(b"cookie", header)]) == (
        200, _json_headers(b"2"), b"{}"
    )  # fmt: skip


def _json_headers(length: bytes) -> dict[bytes, bytes]:
    return {b"content-length": length, b"content-type": b"application/json"}


# --- options and a hung store ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [(option, value) for option in ("ttl", "timeout")
     for value in (math.nan, math.inf, -math.inf, -5.0, 0, "1", None)]
    + [("ttl", 0.5), ("ttl", 1e17), ("timeout", 1e17)],
)  # fmt: skip
def test_a_bad_numeric_option_is_refused_by_name(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^{option} "):
        rung.SessionMiddleware(
            make_app("redis://x", "p"), redis_url="redis://x", secret=SECRET, **{option: value}
        )


@pytest.mark.parametrize("name", ["", "a b", "a=b", "a;b"])
def test_a_bad_cookie_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="cookie_name"):
        rung.SessionMiddleware(
            make_app("redis://x", "p"), redis_url="redis://x", secret=SECRET, cookie_name=name
        )


async def test_a_hung_session_store_answers_503(rung_stack: RungStack, prefix: str) -> None:
    """The queue Redis SIGSTOPped: loading and saving answer 503 instead of hanging (how
    long they take against `timeout` is in bench/faults_state.py)."""
    async with instances(rung_stack.queue_url, prefix) as (a, _):
        cookie = session_cookie(await a.post("/visit"))
        rung_stack.freeze("queue")
        try:
            loading = await a.get("/me", headers=with_cookie(cookie))
            saving = await a.post("/visit")
        finally:
            rung_stack.thaw("queue")
        assert [loading.status_code, saving.status_code] == [503, 503]
        assert (await a.get("/me", headers=with_cookie(cookie))).json() == {"visits": 1}
