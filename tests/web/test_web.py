"""rung.web on the real stack: the token carried between two instances over HTTP, health,
readiness, metrics and the errors rung knows as 503s."""

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from prometheus_client.parser import text_string_to_metric_families

import rung
import rung.web
from rung.testing import RungStack
from tests.helpers import in_fresh_context, poll

SECRET = "a-secret-of-at-least-16-bytes"


def instance(db: rung.Database, table: str, **install: Any) -> FastAPI:
    """One app instance: writes and reads rows of `table` through `db`."""
    app = FastAPI()
    rung.web.install(app, db=db, secret=SECRET, **install)

    @app.post("/rows/{k}")
    async def write(k: int) -> dict[str, int]:
        await db.execute(f"INSERT INTO {table} VALUES ($1, $1)", k)
        return {"k": k}

    @app.get("/rows/{k}")
    async def read(k: int) -> dict[str, Any]:
        return {"v": await db.fetchval(f"SELECT v FROM {table} WHERE k = $1", k)}

    async def written_by_a_dependency(k: int) -> int:
        await db.execute(f"INSERT INTO {table} VALUES ($1, $1)", k)
        return k

    @app.post("/dependency/{k}")
    async def dependency(k: int = Depends(written_by_a_dependency)) -> dict[str, int]:
        return {"k": k}

    @app.post("/background/{k}")
    async def background(k: int, tasks: BackgroundTasks) -> dict[str, int]:
        await db.execute(f"INSERT INTO {table} VALUES ($1, $1)", k)
        tasks.add_task(db.fetchval, "SELECT 1")
        return {"k": k}

    @app.post("/streaming/{k}")
    async def streaming(k: int) -> StreamingResponse:
        await db.execute(f"INSERT INTO {table} VALUES ($1, $1)", k)

        async def body() -> AsyncGenerator[bytes, None]:
            yield b'{"k": '
            yield str(k).encode() + b"}"

        return StreamingResponse(body(), media_type="application/json")

    @app.get("/full")
    async def full() -> None:
        raise rung.QueueFull("max_depth 10 reached")

    return app


async def request(
    app: FastAPI, method: str, url: str, *, cookies: dict[str, str] | None = None, **kwargs: Any
) -> httpx.Response:
    """One request as a separate HTTP request to that instance: a fresh context."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", cookies=cookies
        ) as client:
            return await client.request(method, url, **kwargs)

    return await in_fresh_context(send())


@pytest.fixture
async def other_db(rung_stack: RungStack) -> AsyncIterator[rung.Database]:
    """Instance B's Database: another process's pools and monitor."""
    async with rung.Database(rung_stack.primary_url, rung_stack.replica_urls, max_lag=60.0) as db:
        yield db


async def test_a_write_through_one_instance_is_read_through_the_other(
    db: rung.Database, other_db: rung.Database, table: str, stale_replicas: None
) -> None:
    """Every replica stale: 100 of 100 reads through B see A's write, carried by the cookie
    (and by the header alone); without it the read is stale (the control)."""
    a, b = instance(db, table), instance(other_db, table)
    for k in range(100):
        wrote = await request(a, "POST", f"/rows/{k}")
        assert wrote.status_code == 200
        cookie = wrote.cookies[rung.web.COOKIE]
        assert wrote.headers[rung.web.HEADER] == cookie
        by_cookie = await request(b, "GET", f"/rows/{k}", cookies={rung.web.COOKIE: cookie})
        assert by_cookie.json() == {"v": k}
    by_header = await request(b, "GET", "/rows/99", headers={rung.web.HEADER: cookie})
    assert by_header.json() == {"v": 99}
    assert (await request(b, "GET", "/rows/99")).json() == {"v": None}


@pytest.mark.parametrize(
    "forged",
    [
        "garbage",
        "FFFFFFFF/FFFFFFFF",
        rung.web.tokens.sign("FFFFFFFF/FFFFFFFF", b"another stack's secret, 32 bytes", now=1e10),
        "é🙂" * 10,
        "x" * 10_000,
    ],
)
async def test_a_forged_or_garbage_token_is_ignored(
    db: rung.Database, other_db: rung.Database, table: str, forged: str
) -> None:
    """The read goes to a replica as if no token came, and nothing errors."""
    b = instance(other_db, table)
    before = other_db.stats()
    for sent in ({"cookies": {rung.web.COOKIE: forged}}, {"headers": {rung.web.HEADER: forged}}):
        try:
            response = await request(b, "GET", "/rows/1", **sent)
        except UnicodeEncodeError:  # httpx will not send non-ASCII headers
            continue
        assert response.status_code == 200
        assert rung.web.COOKIE not in response.cookies
    after = other_db.stats()
    assert after["primary"]["queries"] == before["primary"]["queries"]


async def test_the_later_of_cookie_and_header_wins(
    db: rung.Database, other_db: rung.Database, table: str, stale_replicas: None
) -> None:
    a, b = instance(db, table), instance(other_db, table)
    older = (await request(a, "POST", "/rows/1")).headers[rung.web.HEADER]
    newer = (await request(a, "POST", "/rows/2")).headers[rung.web.HEADER]
    for cookie, header in ((older, newer), (newer, older)):
        read = await request(
            b,
            "GET",
            "/rows/2",
            cookies={rung.web.COOKIE: cookie},
            headers={rung.web.HEADER: header},
        )
        assert read.json() == {"v": 2}


@pytest.mark.parametrize("path", ["/dependency/5", "/background/5", "/streaming/5"])
async def test_the_token_survives_dependencies_background_tasks_and_streaming(
    db: rung.Database, other_db: rung.Database, table: str, stale_replicas: None, path: str
) -> None:
    a, b = instance(db, table), instance(other_db, table)
    wrote = await request(a, "POST", path)
    assert wrote.json() == {"k": 5}
    token = wrote.headers[rung.web.HEADER]
    assert (await request(b, "GET", "/rows/5", headers={rung.web.HEADER: token})).json() == {"v": 5}


async def test_a_read_only_request_sets_no_cookie(db: rung.Database, table: str) -> None:
    read = await request(instance(db, table), "GET", "/rows/1")
    assert rung.web.COOKIE not in read.cookies and rung.web.HEADER not in read.headers


async def test_health_readiness_and_metrics(
    rung_stack: RungStack, db: rung.Database, table: str
) -> None:
    """/metrics parses with prometheus-client's parser and has db, cache and queue series."""
    async with (
        rung.Cache(rung_stack.cache_url, namespace="webtest", db=db) as cache,
        rung.Queue(rung_stack.queue_url, stream="webtest") as queue,
    ):
        app = FastAPI()
        web = rung.web.install(app, db=db, cache=cache, queue=queue, secret=SECRET)
        await cache.get_or_load("k", lambda: db.fetchval("SELECT 1"))
        await queue.put({"n": 1})
        assert (await request(app, "GET", "/healthz")).status_code == 200
        assert (await request(app, "GET", "/readyz")).json() == {"status": "ready"}
        metrics = await request(app, "GET", "/metrics")
    assert metrics.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    for name in (
        "rung_db_queries", "rung_db_pool_connections", "rung_db_replica_lag_seconds",
        "rung_cache_hits", "rung_cache_misses", "rung_cache_hit_ratio", "rung_queue_depth",
        "rung_queue_oldest_age_seconds",
    ):  # fmt: skip
        assert name in families, name
    assert families["rung_db_queries"].type == "counter"
    nodes = {s.labels["node"] for s in families["rung_db_queries"].samples}
    assert nodes == {"primary", "replica1", "replica2"}
    assert [s.value for s in families["rung_queue_depth"].samples] == [1.0]
    assert web.registry is not None and not web.draining
    assert "/metrics" not in app.openapi()["paths"]


async def test_readiness_fails_while_the_primary_is_unreachable() -> None:
    async with rung.Database("postgresql://rung@127.0.0.1:1/rung", acquire_timeout=0.5) as db:
        app = FastAPI()
        rung.web.install(app, db=db, secret=SECRET)
        assert (await request(app, "GET", "/readyz")).status_code == 503
        assert (await request(app, "GET", "/healthz")).status_code == 200


async def test_an_error_rung_knows_is_a_503_with_retry_after(db: rung.Database, table: str) -> None:
    answer = await request(instance(db, table), "GET", "/full")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert answer.json() == {"error": "QueueFull", "detail": "max_depth 10 reached"}


def test_a_short_secret_is_refused(db: rung.Database) -> None:
    with pytest.raises(ValueError, match="secret"):
        rung.web.install(FastAPI(), db=db, secret="short")


@pytest.mark.parametrize(
    "cookie",
    [b"rung_lsn=\xff\xfe\xfd", "rung_lsn=é🙂".encode(), b"rung_lsn=" + b"9" * 100_000, b"\x00"],
)
async def test_hostile_bytes_in_the_cookie_or_header_are_ignored(
    db: rung.Database, cookie: bytes
) -> None:
    """As uvicorn passes them through: raw bytes in the ASGI scope, not an HTTP client."""
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    middleware = rung.web.TokenMiddleware(app, db=db, secret=SECRET)
    scope = {"type": "http", "method": "GET", "path": "/",
             "headers": [(b"cookie", cookie), (b"rung-lsn", cookie)]}  # fmt: skip
    await in_fresh_context(middleware(scope, receive, send))
    assert sent[0]["status"] == 200


async def test_sigterm_drains_then_exits_zero(tmp_path: Any) -> None:
    """A real uvicorn instance: after SIGTERM /readyz says 503 while requests are still
    served for the grace, a request in flight at the hand-over completes, and the
    process exits 0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "uvicorn.log").open("w")
    server = subprocess.Popen(  # noqa: ASYNC220 (it only starts the process)
        [sys.executable, "-m", "uvicorn", "tests.web.drain_app:app", "--port", str(port),
         "--no-access-log", "--timeout-graceful-shutdown", "10"],
        cwd=Path(__file__).parent.parent.parent, stdout=subprocess.DEVNULL,
        stderr=log,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

            async def up() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await poll(up)
            server.send_signal(signal.SIGTERM)

            async def draining() -> bool:
                return (await client.get("/readyz")).status_code == 503

            await poll(draining)
            served = await client.get("/ping")
            assert served.status_code == 200
            assert served.headers["connection"] == "close"
            in_flight = await client.get("/slow")  # spans the hand-over at grace = 1 s
            assert in_flight.json() == {"slow": "done"}
        assert await asyncio.to_thread(server.wait, 30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
