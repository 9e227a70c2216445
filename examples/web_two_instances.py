"""Read-your-writes across two app instances over HTTP: instance A writes, instance B reads
with the cookie A's response set, while the replica has stopped replaying.

    rung up --replicas 1 && python examples/web_two_instances.py
"""

import asyncio
import contextvars

import httpx
from fastapi import FastAPI

import rung
import rung.web
from rung.stack import Stack, default_dir, psql
from rung.testing import wait_until

SECRET = "one secret shared by every instance"


def instance(db: rung.Database) -> FastAPI:
    app = FastAPI()
    rung.web.install(app, db=db, secret=SECRET)

    @app.put("/notes/{note_id}")
    async def write(note_id: int, body: str) -> dict[str, str]:
        await db.execute(
            "INSERT INTO web_notes VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = $2",
            note_id, body,
        )  # fmt: skip
        return {"body": body}

    @app.get("/notes/{note_id}")
    async def read(note_id: int) -> dict[str, str | None]:
        return {"body": await db.fetchval("SELECT body FROM web_notes WHERE id = $1", note_id)}

    return app


async def call(app: FastAPI, method: str, url: str, **kwargs: object) -> httpx.Response:
    """One request, as a separate request to that instance would run: its own context."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.request(method, url, **kwargs)  # type: ignore[arg-type]

    return await asyncio.create_task(send(), context=contextvars.Context())


async def main() -> None:
    stack = Stack(default_dir()).running()
    assert stack is not None, "start a stack first: rung up"
    urls = stack.urls()
    replica_port = next(c.port for c in stack.components if c.name == "replica1")
    primary, replicas = urls["primary_url"], urls["replica_urls"][:1]

    async with (
        rung.Database(primary, replicas, max_lag=60.0) as db_a,  # instance A's
        rung.Database(primary, replicas, max_lag=60.0) as db_b,  # instance B's
    ):
        await db_a.execute("CREATE TABLE IF NOT EXISTS web_notes (id int PRIMARY KEY, body text)")
        await db_a.execute("DELETE FROM web_notes")
        caught_up = f"SELECT pg_last_wal_replay_lsn() >= '{db_a.token()}'"
        wait_until(lambda: psql(replica_port, caught_up) == "t")
        psql(replica_port, "SELECT pg_wal_replay_pause()")  # the replica goes stale
        try:
            a, b = instance(db_a), instance(db_b)
            wrote = await call(a, "PUT", "/notes/1", params={"body": "hello"})
            cookie = wrote.cookies[rung.web.COOKIE]
            print("A wrote, cookie set:", rung.web.COOKIE in wrote.cookies)
            sent = {"cookie": f"{rung.web.COOKIE}={cookie}"}  # as the browser sends it back
            with_cookie = await call(b, "GET", "/notes/1", headers=sent)
            print("B with the cookie:", with_cookie.json()["body"])
            without = await call(b, "GET", "/notes/1")
            print("B without it:", without.json()["body"])
            forged = await call(b, "GET", "/notes/1", headers={rung.web.HEADER: "0/FFFFFFFF"})
            print("B with a forged token:", forged.json()["body"], forged.status_code)
        finally:
            psql(replica_port, "SELECT pg_wal_replay_resume()")


if __name__ == "__main__":
    asyncio.run(main())
