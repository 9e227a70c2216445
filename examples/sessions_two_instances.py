"""Two app objects (two instances behind a load balancer) share sessions through Redis:
log in on one, be logged in on the other; regenerate() on login retires the old id.

    rung up && python examples/sessions_two_instances.py
"""

import asyncio
import secrets

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import rung
from rung.stack import Stack, default_dir

SECRET = secrets.token_hex(32)  # in production: the same secret on every instance


async def login(request: Request) -> Response:
    request.session.regenerate()  # a new id for the logged-in session: no fixation
    request.session["user"] = (await request.json())["user"]
    return JSONResponse({"ok": True})


async def me(request: Request) -> Response:
    return JSONResponse({"user": request.session.get("user")})


def instance(redis_url: str) -> Starlette:
    middleware = [Middleware(rung.SessionMiddleware, redis_url=redis_url, secret=SECRET)]
    routes = [Route("/login", login, methods=["POST"]), Route("/me", me)]
    return Starlette(routes=routes, middleware=middleware)


async def main() -> None:
    stack = Stack(default_dir()).running()
    assert stack is not None, "start a stack first: rung up"
    queue_url = stack.urls()["queue_url"]  # the durable Redis: sessions must not be evicted
    a, b = instance(queue_url), instance(queue_url)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://a") as on_a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=b), base_url="http://b") as on_b,
    ):
        response = await on_a.post("/login", json={"user": "ann"})
        cookie = response.headers["set-cookie"].split(";")[0]
        print("instance A set:", cookie.split("=")[0], "(HttpOnly, SameSite=Lax)")
        seen = await on_b.get("/me", headers={"cookie": cookie})
        print("instance B sees:", seen.json()["user"])
        forged = cookie[:-4] + "AAAA"
        print("a forged cookie sees:", (await on_b.get("/me", headers={"cookie": forged})).json())
    for app in (a, b):  # uvicorn would do this at lifespan shutdown
        layer = app.middleware_stack
        while layer is not None:
            if isinstance(layer, rung.SessionMiddleware):
                await layer.close()
            layer = getattr(layer, "app", None)


if __name__ == "__main__":
    asyncio.run(main())
