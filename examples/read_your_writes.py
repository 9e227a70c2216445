"""Read-your-writes across a replica that has stopped replaying: the write is seen at once,
by this context and by another one that is handed the token (another instance would be).

    rung up --replicas 1 && python examples/read_your_writes.py
"""

import asyncio
import contextvars

import rung
from rung.stack import Stack, default_dir, psql
from rung.testing import wait_until


async def main() -> None:
    stack = Stack(default_dir()).running()
    assert stack is not None, "start a stack first: rung up"
    urls = stack.urls()
    replica_port = next(c.port for c in stack.components if c.name == "replica1")

    async with rung.Database(urls["primary_url"], urls["replica_urls"][:1], max_lag=60.0) as db:
        await db.execute("CREATE TABLE IF NOT EXISTS ryw_notes (id int PRIMARY KEY, body text)")
        await db.execute("DELETE FROM ryw_notes")
        caught_up = f"SELECT pg_last_wal_replay_lsn() >= '{db.token()}'"
        wait_until(lambda: psql(replica_port, caught_up) == "t")  # the replica has the table
        psql(replica_port, "SELECT pg_wal_replay_pause()")  # it goes stale
        try:
            await db.execute("INSERT INTO ryw_notes VALUES (1, 'hello')")
            print("writer sees:", await db.fetchval("SELECT body FROM ryw_notes WHERE id = 1"))
            token = db.token()  # what the web middleware puts in a cookie

            async def another_instance() -> None:
                print("no token:  ", await db.fetchval("SELECT body FROM ryw_notes WHERE id = 1"))
                with db.observe(token):
                    print(
                        "with token:", await db.fetchval("SELECT body FROM ryw_notes WHERE id = 1")
                    )

            await asyncio.create_task(another_instance(), context=contextvars.Context())
        finally:
            psql(replica_port, "SELECT pg_wal_replay_resume()")
        print("served by:", {name: node["queries"] for name, node in db.stats().items()})


if __name__ == "__main__":
    asyncio.run(main())
