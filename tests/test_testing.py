"""rung.testing for apps: AppClient, truncate and stale_replicas, against the real stack."""

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import rung
from rung.testing import AppClient, RungStack, truncate
from tests.helpers import in_fresh_context


def rows_app(db: rung.Database, table: str, **options: Any) -> Starlette:
    """PUT /rows/{k} {"v": ...} writes a row of `table`; GET /rows/{k} reads its v."""

    async def put(request: Request) -> Response:
        k, v = request.path_params["k"], (await request.json())["v"]
        await db.execute(f"INSERT INTO {table} VALUES ($1, $2)", k, v)
        return JSONResponse({"k": k, "v": v})

    async def get(request: Request) -> Response:
        v = await db.fetchval(f"SELECT v FROM {table} WHERE k = $1", request.path_params["k"])
        return JSONResponse({"v": v})

    routes = [Route("/rows/{k:int}", put, methods=["PUT"]), Route("/rows/{k:int}", get)]
    return Starlette(routes=routes, **options)


async def test_an_in_process_client_leaks_the_token_into_the_test(
    db: rung.Database, table: str
) -> None:
    """The hazard: plain httpx.ASGITransport runs the app in the test's context, so the
    token of the app's write is left set in the test (and in every later request)."""
    transport = httpx.ASGITransport(app=rows_app(db, table))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as plain:
        await plain.put("/rows/1", json={"v": 10})
    assert db.token() is not None


async def test_a_request_token_stays_out_of_the_test_context(db: rung.Database, table: str) -> None:
    """AppClient runs each request in a fresh context: the client carries the token, the
    test's context does not get it."""
    async with AppClient(rows_app(db, table), db=db) as client:
        await client.put("/rows/1", json={"v": 10})
        assert db.token() is None
        assert client.token is not None


async def test_the_carried_token_lets_the_next_request_read_the_write(
    db: rung.Database, table: str, stale_replicas: None
) -> None:
    async with AppClient(rows_app(db, table), db=db) as client:
        await client.put("/rows/1", json={"v": 10})
        assert (await client.get("/rows/1")).json() == {"v": 10}


async def test_without_carrying_the_next_request_reads_a_stale_replica(
    db: rung.Database, table: str, stale_replicas: None
) -> None:
    """The control: with carry_tokens=False the same read misses the write."""
    async with AppClient(rows_app(db, table), db=db, carry_tokens=False) as client:
        await client.put("/rows/1", json={"v": 10})
        assert (await client.get("/rows/1")).json() == {"v": None}
        assert client.token is None


async def test_rows_the_test_wrote_are_visible_to_a_request(
    db: rung.Database, table: str, stale_replicas: None
) -> None:
    """The caller's own token goes with each request."""
    await db.execute(f"INSERT INTO {table} VALUES (1, 10)")
    async with AppClient(rows_app(db, table), db=db) as client:
        assert (await client.get("/rows/1")).json() == {"v": 10}


async def test_observe_carries_a_token_from_another_context(
    db: rung.Database, table: str, stale_replicas: None
) -> None:
    async def write() -> str | None:
        await db.execute(f"INSERT INTO {table} VALUES (1, 10)")
        return db.token()

    token = await in_fresh_context(write())  # as a fixture in another context would
    async with AppClient(rows_app(db, table), db=db) as client:
        assert (await client.get("/rows/1")).json() == {"v": None}
        client.observe(token)
        assert (await client.get("/rows/1")).json() == {"v": 10}


async def test_observe_refuses_a_malformed_token(db: rung.Database, table: str) -> None:
    async with AppClient(rows_app(db, table), db=db) as client:
        with pytest.raises(rung.InvalidToken):
            client.observe("0/1; DROP TABLE users")
        assert client.token is None


async def test_the_lifespan_runs_and_its_writes_are_carried(
    db: rung.Database, table: str, stale_replicas: None
) -> None:
    """Startup runs on enter (its state reaches requests, its write is visible to the first
    one), shutdown on exit."""
    events = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
        await db.execute(f"INSERT INTO {table} VALUES (1, 10)")  # a seed row
        events.append("startup")
        yield {"greeting": "hello"}
        events.append("shutdown")

    async def greeting(request: Request) -> Response:
        return JSONResponse(request.state.greeting)

    app = rows_app(db, table, lifespan=lifespan)
    app.router.routes.append(Route("/greeting", greeting))
    async with AppClient(app, db=db) as client:
        assert events == ["startup"]
        assert (await client.get("/greeting")).json() == "hello"
        assert (await client.get("/rows/1")).json() == {"v": 10}
    assert events == ["startup", "shutdown"]


async def test_a_failing_startup_raises_its_error(db: rung.Database, table: str) -> None:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("cannot reach the database")
        yield

    with pytest.raises(RuntimeError, match="cannot reach the database"):
        async with AppClient(rows_app(db, table, lifespan=lifespan), db=db):
            pass


@pytest.fixture
def three_rows(table: str, rung_stack: RungStack) -> str:
    """`table` with three rows, on every replica too."""
    rung_stack.sql("primary", f"INSERT INTO {table} VALUES (1, 1), (2, 2), (3, 3)")
    rung_stack.wait_for_replicas()
    return table


async def test_truncate_empties_the_table_and_advances_the_token(
    db: rung.Database, three_rows: str, stale_replicas: None
) -> None:
    """After truncate this context reads the empty table, though the replicas still have
    the rows."""
    assert db.token() is None
    await truncate(db, three_rows)
    assert db.token() is not None
    assert await db.fetchval(f"SELECT count(*) FROM {three_rows}") == 0
    assert await in_fresh_context(db.fetchval(f"SELECT count(*) FROM {three_rows}")) == 3


async def test_truncate_restarts_identities(db: rung.Database, rung_stack: RungStack) -> None:
    rung_stack.sql("primary", "CREATE TABLE IF NOT EXISTS truncated_ids (id serial, body text)")
    await db.execute("INSERT INTO truncated_ids (body) VALUES ('a'), ('b')")
    await truncate(db, "public.truncated_ids")
    assert await db.fetchval("INSERT INTO truncated_ids (body) VALUES ('c') RETURNING id") == 1


@pytest.mark.parametrize(
    "name", ["notes; DROP TABLE users", "1notes", "a.b.c", '"notes"', "notes ", ""]
)
async def test_truncate_refuses_a_name_that_is_not_a_table(db: rung.Database, name: str) -> None:
    with pytest.raises(ValueError, match="not a table name") as raised:
        await truncate(db, "ok_table", name)
    assert repr(name) in str(raised.value)
    assert db.token() is None  # nothing ran


async def test_truncate_needs_a_table(db: rung.Database) -> None:
    with pytest.raises(ValueError, match="at least one table"):
        await truncate(db)


def test_stale_replicas_pauses_every_replica(rung_stack: RungStack, stale_replicas: None) -> None:
    states = {
        f"replica{i}": rung_stack.sql(f"replica{i}", "SELECT pg_get_wal_replay_pause_state()")
        for i in range(1, len(rung_stack.replica_urls) + 1)
    }
    assert set(states.values()) == {"paused"}, states


def test_importing_rung_testing_imports_no_http_client() -> None:
    """The plugin loads in every pytest run of a project with rung installed: httpx and
    Starlette are imported only when an AppClient is made."""
    code = "import sys, rung.testing; print(sorted({'httpx', 'starlette'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


async def test_a_frozen_component_hangs_until_thawed(rung_stack: RungStack) -> None:
    """freeze() makes the cache Redis accept connections and answer nothing; thaw() brings
    it back."""
    async with Redis.from_url(rung_stack.cache_url, socket_timeout=5.0) as redis:
        assert await redis.ping()
        rung_stack.freeze("cache")
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await redis.ping()
        finally:
            rung_stack.thaw("cache")
        assert await redis.ping()


def test_freezing_a_component_that_is_not_there_is_a_stack_error(rung_stack: RungStack) -> None:
    with pytest.raises(rung.StackError):
        rung_stack.freeze("nonesuch")
