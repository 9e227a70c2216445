"""rung.SessionMiddleware against the real stack's durable Redis: two app objects share
sessions, regenerate() rotates the id, tampering gives an empty session, logout deletes."""

import secrets
from collections.abc import AsyncIterator

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


def make_app(redis_url: str, prefix: str, **options: object) -> Starlette:
    routes = [Route("/visit", visit, methods=["POST"]), Route("/login", login, methods=["POST"]),
              Route("/me", me), Route("/logout", logout, methods=["POST"])]  # fmt: skip
    options = {"redis_url": redis_url, "secret": SECRET, "prefix": prefix, **options}
    return Starlette(routes=routes, middleware=[Middleware(rung.SessionMiddleware, **options)])


@pytest.fixture
def prefix() -> str:
    return f"test:session:{secrets.token_hex(4)}"


@pytest.fixture
async def two_instances(
    rung_stack: RungStack, prefix: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two separate app objects (two instances) on one Redis; cookies are passed by hand."""
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=make_app(rung_stack.queue_url, prefix)),
            base_url="http://test",
        )
        for _ in range(2)
    ]
    yield clients[0], clients[1]
    for c in clients:
        await close_sessions(c)


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
    from rung.state.sessions import Session

    session = Session()
    with pytest.raises(TypeError, match=r"session\['when'\] must be JSON-serializable"):
        session["when"] = object()
    with pytest.raises(TypeError, match="session keys are strings"):
        session[1] = "x"  # type: ignore[index]
    assert not session.modified
