"""The FastAPI + SQLAlchemy example app (examples/sqlalchemy_app) on the real stack: its reads
see its writes in the request and, carried by rung.web's TokenMiddleware, through another
instance; its own suite passes with replay paused, and fails without the middleware."""

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("fastapi")

import rung
import rung.sqlalchemy
import rung.web
from rung.testing import AppClient, RungStack, truncate

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "sqlalchemy_app"
sys.path.insert(0, str(EXAMPLE))
from app import create_app  # noqa: E402

SECRET = "a test secret, 16+ bytes"


@asynccontextmanager
async def instance(rung_stack: RungStack, *, carrier: bool = True) -> AsyncIterator[AppClient]:
    """One instance of the app: its own Database, engines and client; requests in fresh
    contexts, with nothing but the app's middleware (cookie, header) carrying the token."""
    db = rung.Database(rung_stack.primary_url, rung_stack.replica_urls, max_lag=60.0)
    Session = rung.sqlalchemy.sessionmaker(db)
    app = create_app(Session, secret=SECRET if carrier else None)
    async with db, AppClient(app, db=db, carry_tokens=False) as client:
        yield client


@pytest.fixture
async def emptied(rung_stack: RungStack) -> None:
    async with instance(rung_stack) as client:  # its lifespan makes the tables
        await truncate(client.db, "sqla_tasks", "sqla_projects")
    rung_stack.wait_for_replicas()


async def test_writes_are_read_in_the_request_and_through_another_instance(
    rung_stack: RungStack, emptied: None
) -> None:
    async with instance(rung_stack) as a, instance(rung_stack) as b:
        await a.get("/probe")  # both apps made their tables before replay stops
        await b.get("/probe")
        rung_stack.wait_for_replicas()
        for replica in range(len(rung_stack.replica_urls)):
            rung_stack.pause_replay(replica)
        try:
            created = await a.post("/projects", json={"name": "p", "tasks": ["x", "y"]})
            assert [t["title"] for t in created.json()["tasks"]] == ["x", "y"]  # same request
            token = created.headers[rung.web.HEADER]
            project = created.json()["id"]

            via_b = await b.get(f"/projects/{project}", headers={rung.web.HEADER: token})
            assert via_b.status_code == 200
            assert via_b.json() == created.json()

            added = await b.post(f"/projects/{project}/tasks", json={"title": "z"},
                                 headers={rung.web.HEADER: token})  # fmt: skip
            token_b = added.headers[rung.web.HEADER]
            via_a = await a.get(f"/projects/{project}", headers={rung.web.HEADER: token_b})
            assert [t["title"] for t in via_a.json()["tasks"]] == ["x", "y", "z"]
            assert via_a.json()["open_tasks"] == 3

            # The control: an instance that carries no token reads a stale replica.
            async with instance(rung_stack, carrier=False) as c:
                assert (await c.get(f"/projects/{project}")).status_code == 404
        finally:
            for replica in range(len(rung_stack.replica_urls)):
                rung_stack.resume_replay(replica)


async def test_with_replay_running_reads_land_on_replicas(
    rung_stack: RungStack, emptied: None
) -> None:
    async with instance(rung_stack) as a:
        created = (await a.post("/projects", json={"name": "q"})).json()
        rung_stack.wait_for_replicas()
        assert (await a.get("/probe")).json() == {"replica": True}
        before = a.db.stats()
        assert (await a.get(f"/projects/{created['id']}")).status_code == 200
        after = a.db.stats()
        assert after["primary"]["queries"] == before["primary"]["queries"]


def _suite(rung_stack: RungStack, **env: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE)]
    environ = {**os.environ, "RUNG_DIR": str(rung_stack.dir), **env}
    return subprocess.run(args, capture_output=True, text=True, env=environ, timeout=180)


def test_the_apps_suite_passes_with_replay_paused(rung_stack: RungStack) -> None:
    done = _suite(rung_stack)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout


def test_the_apps_suite_fails_without_the_token_carrier(rung_stack: RungStack) -> None:
    """The control: SQLA_APP_CARRIER=0 drops the middleware; each read after a write in a
    later request goes to a stale replica (only the 404 test passes)."""
    done = _suite(rung_stack, SQLA_APP_CARRIER="0")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "3 failed, 1 passed" in done.stdout


def test_the_read_your_writes_example_shows_stale_and_fresh_reads(rung_stack: RungStack) -> None:
    """examples/sqlalchemy_read_your_writes.py (docs/sqlalchemy.md shows it)."""
    example = EXAMPLE.parent / "sqlalchemy_read_your_writes.py"
    environ = {**os.environ, "RUNG_DIR": str(rung_stack.dir)}
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True,
                          env=environ, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(":", 1) for line in done.stdout.splitlines())
    assert {k: lines[k].strip() for k in ("committed", "writer sees", "db.fetchval",
            "no token", "with token")} == {"committed": "True", "writer sees": "hello",
            "db.fetchval": "hello", "no token": "None", "with token": "hello"}  # fmt: skip
