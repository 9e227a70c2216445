"""What a ported app meets on rung.Database: its own mistakes stay its own, a SELECT that
writes still works, after-commit failures are all reported, tokens from outside are checked,
and a block's reads can stay on one replica.

    rung up --replicas 1 && python examples/db_in_an_app.py
"""

import asyncio

import asyncpg

import rung
from rung.stack import Stack, default_dir


async def main() -> None:
    stack = Stack(default_dir()).running()
    assert stack is not None, "start a stack first: rung up"
    urls = stack.urls()

    async with rung.Database(urls["primary_url"], urls["replica_urls"]) as db:
        await db.execute("CREATE TABLE IF NOT EXISTS app_visits (n serial PRIMARY KEY)")
        await db.execute(
            "CREATE OR REPLACE FUNCTION app_visit() RETURNS int LANGUAGE sql AS "
            "$$ INSERT INTO app_visits DEFAULT VALUES RETURNING n $$"
        )

        # 1. A bug in the caller is the driver's error, and no node is taken for dead.
        try:
            await db.fetchval("SELECT $1::int", 1, 2)
        except asyncpg.InterfaceError as e:
            print("caller's bug:", type(e).__name__)
        print("nodes healthy:", all(node["healthy"] for node in db.stats().values()))

        # 2. A SELECT that writes: a replica refuses it, rung runs it on the primary.
        n = await db.fetchval("SELECT app_visit()")
        print("hidden write:", await db.fetchval("SELECT n FROM app_visits WHERE n = $1", n) == n)

        # 3. Every after-commit callback runs; the failures come together, after the commit.
        async def invalidate(key: str) -> None:
            raise ConnectionError(f"cache down, {key} not invalidated")

        try:
            async with db.transaction():
                n = await db.fetchval("SELECT app_visit()")
                db.after_commit(invalidate, "visits:a")
                db.after_commit(invalidate, "visits:b")
        except rung.AfterCommitFailed as failed:
            print("committed:", failed.committed, "failures:", len(failed.exceptions))

        # 4. Tokens from a cookie or a header: junk is ignored, the latest valid one wins.
        carried = rung.Token.merge("0/1\n", db.token(), "not a token")
        print("carried token is ours:", carried == db.token())

        # 5. A report's reads on one replica; a read it cannot serve goes to the primary.
        before = db.stats()
        async with db.pin():
            for query in ("SELECT count(*) FROM app_visits", "SELECT max(n) FROM app_visits"):
                await db.fetchval(query)
        served = [name for name, node in db.stats().items()
                  if node["queries"] > before[name]["queries"]]  # fmt: skip
        print("pinned reads served by one node:", len(served) == 1)


if __name__ == "__main__":
    asyncio.run(main())
