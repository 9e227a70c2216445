"""Sessions and Singleton against a hung (SIGSTOPped) queue Redis: the worst latency of each
call against the bound it is configured with. The goal is every call within its bound plus
100 ms, and everything working again after SIGCONT.

- session load / save: 3 rounds of 100 concurrent requests (twice the connection pool, so
  waiting for a connection counts too), each answered 503 within `timeout`;
- Singleton claim / acquire / renew / release: 3 rounds of 10 concurrent calls, each
  raising within `timeout`;
- a held `leadership()` block: LeadershipLost within `lease` of the freeze (the lease's
  deadline, not a Redis reply), and the block's exit (a release) within `timeout`.

    python bench/faults_state.py     # starts a throwaway stack (or set RUNG_DIR)

It freezes the queue Redis of the stack it runs on: never point RUNG_DIR at a stack that
others are using.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import rung
from rung.stack import Stack

SESSION_TIMEOUT = 0.5
SINGLETON_TIMEOUT = 0.5
LEASE = 1.0
CONCURRENT = 100
ROUNDS = 3
SLACK = 0.1  # the goal: within the bound plus 100 ms


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """(seconds, the result or the exception raised)."""
    began = time.perf_counter()
    try:
        result: Any = await call()
    except Exception as e:
        result = e
    return time.perf_counter() - began, result


@dataclass
class Row:
    what: str
    seconds: list[float]  # one per call
    bound: float  # what the call is configured to take at most
    outcome: str

    def line(self) -> str:
        worst = max(self.seconds)
        over = sum(t > self.bound + SLACK for t in self.seconds)
        return (f"{self.what:<34}{len(self.seconds):>6}{worst:>9.3f}{self.bound:>8.2f}"
                f"{over:>6}  {self.outcome}")  # fmt: skip


async def visit(request: Request) -> Response:
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JSONResponse(dict(request.session))


async def sessions(stack: Stack, url: str) -> tuple[list[Row], str]:
    options = {"redis_url": url, "secret": secrets.token_hex(32), "timeout": SESSION_TIMEOUT,
               "prefix": f"bench:{secrets.token_hex(4)}"}  # fmt: skip
    app = Starlette(routes=[Route("/visit", visit, methods=["POST"])],
                    middleware=[Middleware(rung.SessionMiddleware, **options)])  # fmt: skip
    rows = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench"
    ) as client:
        cookie = (await client.post("/visit")).headers["set-cookie"].split(";")[0]
        client.cookies.clear()
        calls = {
            "session load (a cookie)": lambda: client.post("/visit", headers={"cookie": cookie}),
            "session save (a new session)": lambda: client.post("/visit"),
        }  # fmt: skip
        for what, call in calls.items():
            results: list[tuple[float, Any]] = []
            stack.signal("queue", signal.SIGSTOP)
            try:
                for _ in range(ROUNDS):
                    results += await asyncio.gather(*(timed(call) for _ in range(CONCURRENT)))
            finally:
                stack.signal("queue", signal.SIGCONT)
            codes = sorted({r.status_code for _, r in results})
            rows.append(Row(what, [t for t, _ in results], SESSION_TIMEOUT, f"HTTP {codes}"))
        after = await client.post("/visit", headers={"cookie": cookie})
        layer = app.middleware_stack
        while layer is not None:
            if isinstance(layer, rung.SessionMiddleware):
                await layer.close()
            layer = getattr(layer, "app", None)
    return rows, f"sessions after SIGCONT: HTTP {after.status_code} {after.text}"


async def singleton(stack: Stack, url: str) -> tuple[list[Row], str]:
    name = f"bench-{secrets.token_hex(4)}"
    s = rung.Singleton(url, name=name, lease=LEASE, timeout=SINGLETON_TIMEOUT)
    base = f"rung:singleton:{name}"
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "singleton claim": lambda: s._store.run(lambda r: s._claim(
            keys=[f"{base}:j:lease", f"{base}:fence"],
            args=[f"{base}:j:tick:", 1000, s._lease_ms, s.holder, 3], client=r)),
        "singleton acquire": lambda: s._store.run(lambda r: s._acquire(
            keys=[f"{base}:leader", f"{base}:fence"], args=["x", s._lease_ms], client=r),
            idempotent=True),
        "singleton renew": lambda: s._store.run(lambda r: s._renew(
            keys=[f"{base}:leader"], args=["x", s._lease_ms], client=r), idempotent=True),
        "singleton release": lambda: s._store.run(lambda r: s._release(
            keys=[f"{base}:leader"], args=["x"], client=r), idempotent=True),
    }  # fmt: skip
    rows = []
    for what, call in calls.items():
        await call()  # a connection in the pool, as in steady state
        results: list[tuple[float, Any]] = []
        stack.signal("queue", signal.SIGSTOP)
        try:
            for _ in range(ROUNDS):
                results += await asyncio.gather(*(timed(call) for _ in range(10)))
        finally:
            stack.signal("queue", signal.SIGCONT)
        kinds = sorted({type(r).__name__ for _, r in results})
        rows.append(Row(what, [t for t, _ in results], SINGLETON_TIMEOUT, f"raised {kinds}"))

    entered = asyncio.Event()

    async def hold() -> None:
        async with s.leadership():
            entered.set()
            await asyncio.sleep(3600)  # until the lead is lost

    holder = asyncio.create_task(hold())
    await entered.wait()
    stack.signal("queue", signal.SIGSTOP)
    try:
        lost_after, lost = await timed(lambda: holder)
    finally:
        stack.signal("queue", signal.SIGCONT)
    rows.append(Row("leadership lost, from the freeze", [lost_after], LEASE, type(lost).__name__))

    async def short_lead() -> float:
        async with s.leadership():
            stack.signal("queue", signal.SIGSTOP)
            began = time.perf_counter()
        return time.perf_counter() - began  # the exit: a release against the hung Redis

    try:
        exit_took = await short_lead()
    finally:
        stack.signal("queue", signal.SIGCONT)
    rows.append(Row("leadership exit (a release)", [exit_took], SINGLETON_TIMEOUT, "returned"))
    async with s.leadership() as token:
        after = f"singleton after SIGCONT: the lead taken, fencing token {token}"
    await s.close()
    return rows, after


async def main(stack: Stack, url: str) -> dict[str, Any]:
    """Every row as `state.<call>_worst_s`, `_bound_s` and `_over` (calls past the bound
    plus SLACK), and what each does after SIGCONT."""
    logging.getLogger("rung").setLevel(logging.ERROR)  # the expected "unreachable" warnings
    session_rows, session_after = await sessions(stack, url)
    singleton_rows, singleton_after = await singleton(stack, url)
    out: dict[str, Any] = {}
    for row in session_rows + singleton_rows:
        name = "state." + re.sub(r"[^a-z0-9]+", "_", row.what).strip("_")
        out[f"{name}_worst_s"] = round(max(row.seconds), 3)
        out[f"{name}_bound_s"] = row.bound
        out[f"{name}_over"] = sum(t > row.bound + SLACK for t in row.seconds)
    out["state.sessions_after_sigcont"] = session_after
    out["state.singleton_after_sigcont"] = singleton_after
    return out
