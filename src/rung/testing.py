"""pytest plugin: a real rung stack for your tests (installed with rung, entry point `rung`).

    def test_replica_sees_writes(rung_stack):
        rung_stack.pause_replay(0)          # replica1 stops replaying WAL: reads there go stale
        ...
        rung_stack.resume_replay(0)

`rung_stack` is session-scoped: it starts a throwaway stack in a temporary directory and
always takes it down, even when tests fail. With `RUNG_DIR` naming a running stack, it uses
that one and leaves it running. Ini options shape a throwaway stack: `rung_replicas`
(default 1), `rung_instances` and `rung_workers` (app instances behind HAProxy and drain
workers, default 0), `rung_app` and `rung_drain` (their MODULE:NAME targets, default
rung_links'); `rung_stack.app_url` is HAProxy's URL (None without instances).

Testing an app on `rung.Database` (needs httpx, imported only when used):

    async def test_create_then_read(stale_replicas):          # every replica stops replaying
        async with AppClient(app, db=db) as client:          # each request: a fresh context
            await truncate(db, "notes")                       # instead of a rolled-back transaction
            note = (await client.post("/notes", json={"body": "hi"})).json()
            assert (await client.get(f"/notes/{note['id']}")).status_code == 200

A queue with no Redis at all, with Redis Streams' semantics and a clock the test can move
(`MemoryBroker`):

    queue = rung.Queue(broker=MemoryBroker(stream="clicks"))
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from rung.db import _lsn as lsn
from rung.errors import StackError
from rung.queue._memory import MemoryBroker
from rung.stack import Stack
from rung.stack._postgres import psql
from rung.stack._stackfile import StackFile
from rung.state._asgi import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    import httpx

    from rung.db import Database

__all__ = [
    "AppClient",
    "MemoryBroker",
    "RungStack",
    "rung_stack",
    "stale_replicas",
    "truncate",
    "wait_until",
]


class RungStack:
    """A running stack: its URLs, and helpers to make lag and failures on demand."""

    def __init__(self, stack: Stack, record: StackFile) -> None:
        self.stack = stack
        self.dir = stack.dir
        urls = record.urls()
        self.primary_url: str = urls["primary_url"]
        self.replica_urls: list[str] = urls["replica_urls"]
        self.pooled_primary_url: str = urls["pooled_primary_url"]
        self.pooled_replica_urls: list[str] = urls["pooled_replica_urls"]
        self.cache_url: str = urls["cache_url"]
        self.queue_url: str = urls["queue_url"]
        self.app_url: str | None = urls.get("app_url")  # HAProxy, when there are instances
        self.ports = {c.name: c.port for c in record.components}

    def _replica(self, replica: int | str) -> str:
        name = replica if isinstance(replica, str) else f"replica{replica + 1}"
        if name not in self.ports or not name.startswith("replica"):
            raise StackError(f"no replica {replica!r}: this stack has {len(self.replica_urls)}")
        return name

    def pause_replay(self, replica: int | str = 0, *, timeout: float = 10.0) -> None:
        """Stop WAL replay on `replica` (index into `replica_urls`, or a name such as
        'replica1'); returns once replay is paused, so its reads go stale from now on."""
        port = self.ports[self._replica(replica)]
        psql(port, "SELECT pg_wal_replay_pause()")
        wait_until(
            lambda: psql(port, "SELECT pg_get_wal_replay_pause_state()") == "paused", timeout
        )

    def resume_replay(self, replica: int | str = 0) -> None:
        """Resume WAL replay on `replica`."""
        psql(self.ports[self._replica(replica)], "SELECT pg_wal_replay_resume()")

    def wait_for_replicas(self, *replicas: int | str, timeout: float = 10.0) -> None:
        """Return once `replicas` (default: all) have replayed everything the primary has
        written so far: a sync point after DDL or setup writes."""
        lsn = psql(self.ports["primary"], "SELECT pg_current_wal_lsn()")
        query = f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
        for replica in replicas or range(len(self.replica_urls)):
            port = self.ports[self._replica(replica)]
            wait_until(functools.partial(_is_true, port, query), timeout)

    def stop(self, name: str) -> None:
        """Stop one component ('primary', 'replica1', 'pgbouncer', 'cache', 'queue')."""
        self.stack.stop(name)

    def start(self, name: str) -> None:
        """Start a stopped component again, on its port; returns once it answers."""
        self.stack.start(name)

    def freeze(self, name: str) -> None:
        """SIGSTOP component `name`: its sockets stay open and nothing answers, as with a
        hung server. (For PostgreSQL this stops the postmaster: new connections hang, while
        backends already serving a connection still answer.) `thaw` undoes it.

            rung_stack.freeze("cache")
            try: ...   # every cache call must return within its timeout
            finally: rung_stack.thaw("cache")
        """
        self.stack.signal(name, signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        """SIGCONT component `name` after `freeze`."""
        self.stack.signal(name, signal.SIGCONT)

    def sql(self, name: str, query: str) -> str:
        """Run `query` on PostgreSQL node `name` through psql; its unaligned output."""
        return psql(self.ports[name], query)


def _is_true(port: int, query: str) -> bool:
    return psql(port, query) == "t"


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` every 10 ms until it is true; `TimeoutError` after `timeout` seconds.

    >>> wait_until(lambda: replica_has_row(), timeout=2.0)
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(0.01)


# --- testing an app ----------------------------------------------------------------------------

_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


async def truncate(db: Database, *tables: str) -> None:
    """Empty `tables` on the primary (`TRUNCATE ... RESTART IDENTITY CASCADE`): test isolation
    that works with replicas, where a rolled-back transaction cannot (reads go to other
    connections, on other servers, that never see the transaction).

        await truncate(db, "notes", "users")

    It is a write through `db`, so this context's token advances and its later reads see the
    empty tables. A name that is not `table` or `schema.table` is a `ValueError`.
    """
    if not tables:
        raise ValueError("truncate() needs at least one table name")
    for table in tables:
        if not _TABLE.fullmatch(table):
            raise ValueError(f"not a table name: {table!r} (expected table or schema.table)")
    # Validated, so written as given: PostgreSQL folds their case as it did in CREATE TABLE.
    await db.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


class AppClient:
    """An HTTP client for an ASGI app in this process (httpx's ASGITransport) whose requests
    behave like separate requests to separate instances, with the consistency token carried
    from one to the next as a browser carries a cookie.

        async with AppClient(app, db=db) as client:      # runs the app's lifespan too
            note = (await client.post("/notes", json={"body": "hi"})).json()
            assert (await client.get(f"/notes/{note['id']}")).json() == note

    Why: an in-process client runs the app in the test's own task, so the token a write sets
    (a contextvar) stays set for every later request and for the test itself: read-your-writes
    tests pass without anything carrying the token. Here every request runs in a fresh
    `contextvars.Context`, under `db.observe(token)` where `token` is the later of the token
    carried so far and the caller's own (so rows the test wrote through `db` are visible);
    afterwards the client keeps the later of that and the token the request ended with.

    rung's web middleware will carry the token between requests itself (cookie `rung_lsn`,
    header `Rung-LSN`); until an app has it, this client stands in for it. With
    `carry_tokens=False` every request runs with no token at all: the control that shows a
    suite depends on the carrying (with replicas stale, its reads miss the writes).

    The app's lifespan runs on enter and exit, as a server runs it (`lifespan=False` skips
    it); `options` go to `httpx.AsyncClient` (headers, cookies, follow_redirects...).
    Writes the app makes in a task or thread of its own (a sync endpoint, `BaseHTTPMiddleware`)
    set the token there, where neither this client nor the middleware can see it. asyncio only.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        db: Database,
        carry_tokens: bool = True,
        lifespan: bool = True,
        base_url: str = "http://testserver",
        **options: Any,
    ) -> None:
        try:
            import httpx
        except ModuleNotFoundError as e:
            raise ModuleNotFoundError(
                "rung.testing.AppClient needs httpx: pip install httpx"
            ) from e
        self.db = db
        self.carry_tokens = carry_tokens
        self._token: str | None = None
        self._state: dict[str, Any] = {}  # what the lifespan yields, copied into each request
        self._lifespan = _Lifespan(app, self._state) if lifespan else None

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            await app({**scope, "state": dict(self._state)}, receive, send)  # as uvicorn does

        transport = httpx.ASGITransport(app=with_state)
        self._http = httpx.AsyncClient(transport=transport, base_url=base_url, **options)

    @property
    def token(self) -> str | None:
        """The token carried into the next request (None before any write)."""
        return self._token

    def observe(self, token: str | None) -> None:
        """Carry `token` too, from now on: for a fixture that wrote in another context.

        >>> client.observe(token_from_the_fixture)
        """
        if token is not None:
            lsn.parse(token)  # a malformed token fails here, as `db.observe` would fail it
        self._token = lsn.later(self._token, token)

    async def __aenter__(self) -> AppClient:
        await self._http.__aenter__()
        if self._lifespan is not None:
            try:
                await self._lifespan.startup()
            except BaseException:
                await self._http.aclose()
                raise
            # What startup wrote (a migration, seed rows) is visible to the first request.
            self.observe(self._lifespan.context.run(self.db.token))
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._http.aclose()
        finally:
            if self._lifespan is not None:
                await self._lifespan.shutdown()

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send one request in a fresh context, under the carried token; `kwargs` as httpx's."""
        carried = lsn.later(self._token, self.db.token()) if self.carry_tokens else None

        async def one_request() -> tuple[httpx.Response, str | None]:
            with self.db.observe(carried):
                response = await self._http.request(method, url, **kwargs)
                return response, self.db.token()  # the app has returned: its writes are in

        task = asyncio.create_task(one_request(), context=contextvars.Context())
        response, ended_with = await task
        if self.carry_tokens:
            self._token = lsn.later(carried, ended_with)
        return response

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)


class _Lifespan:
    """An ASGI app's lifespan, run as a server runs it: startup, then shutdown at the end. It
    runs in `context`, so the client can read the token of what startup wrote."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self.context = contextvars.Context()
        self._app = app
        self._state = state
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self._state}  # fmt: skip

        async def run() -> None:
            await self._app(scope, self._to_app.get, self._from_app.put)

        self._task = asyncio.create_task(run(), context=self.context)
        await self._step("startup")

    async def shutdown(self) -> None:
        if self._task is None:
            return
        if not self._task.done():
            await self._step("shutdown")
        await self._task  # raises what the lifespan raised, even when it died mid-test

    async def _step(self, phase: str) -> None:
        assert self._task is not None
        await self._to_app.put({"type": f"lifespan.{phase}"})
        reply = asyncio.ensure_future(self._from_app.get())
        await asyncio.wait({reply, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if reply.done() and reply.result()["type"] == f"lifespan.{phase}.complete":
            return
        reply.cancel()
        failure = reply.result().get("message", "") if reply.done() else ""
        if self._task.done():
            self._task.result()  # the app's own exception, when it raised one
        else:
            self._task.cancel()
        raise RuntimeError(f"the app's lifespan {phase} failed {failure}".rstrip())


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("rung_replicas", "replicas in the throwaway stack of `rung_stack`", default="1")
    parser.addini("rung_instances", "app instances behind HAProxy in `rung_stack`", default="0")
    parser.addini("rung_workers", "drain workers in `rung_stack`", default="0")
    parser.addini("rung_app", "MODULE:APP the instances serve (default rung_links')", default="")
    parser.addini("rung_drain", "MODULE:FACTORY the workers run (default rung_links')", default="")


@pytest.fixture(scope="session")
def rung_stack(request: pytest.FixtureRequest) -> Iterator[RungStack]:
    """A running rung stack for the test session (see the module docstring)."""
    shared = os.environ.get("RUNG_DIR")
    if shared:
        stack = Stack(shared)
        record = stack.running()
        if record is None:
            raise StackError(f"RUNG_DIR={shared} names no running stack: run `rung up` there")
        yield RungStack(stack, record)
        return
    workdir = Path(tempfile.mkdtemp(prefix="rung-test-"))
    workdir.chmod(0o755)  # the unprivileged server user must reach it
    stack = Stack(workdir / "stack")
    try:
        ini = request.config.getini
        result = stack.up(
            replicas=int(ini("rung_replicas")),
            instances=int(ini("rung_instances")),
            workers=int(ini("rung_workers")),
            app=ini("rung_app") or None,
            drain=ini("rung_drain") or None,
        )
        yield RungStack(stack, result.stack)
    finally:
        stack.down(purge=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def stale_replicas(rung_stack: RungStack) -> Iterator[None]:
    """Every replica of `rung_stack` stops replaying WAL for the test, and resumes after it
    (even when it fails): a read that does not carry the token misses the test's writes.

        async def test_read_your_writes(client, stale_replicas): ...

    Give the Database a `max_lag` longer than a test (60.0), or it takes the paused replicas
    out of service and every read goes to the primary, stale or not.
    """
    paused: list[int] = []
    try:
        for replica in range(len(rung_stack.replica_urls)):
            rung_stack.pause_replay(replica)
            paused.append(replica)
        yield
    finally:
        for replica in paused:
            rung_stack.resume_replay(replica)
