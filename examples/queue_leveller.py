"""The queue-based load leveller: accept click events fast, drain them into PostgreSQL in
batches, park a bad one in the dead letters, and replay it once the table is fixed.

    rung up && python examples/queue_leveller.py
"""

import asyncio
import secrets

import rung
from rung.stack import Stack, default_dir


async def drain_until_empty(queue: rung.Queue, drain: rung.Drain) -> None:
    running = asyncio.create_task(drain.run())
    while (await queue.stats())["depth"]:  # noqa: ASYNC110 (the state is in Redis)
        await asyncio.sleep(0.05)
    drain.stop()
    await running


async def main() -> None:
    stack = Stack(default_dir()).running()
    assert stack is not None, "start a stack first: rung up"
    urls = stack.urls()
    stream = f"clicks-{secrets.token_hex(3)}"
    db = rung.Database(urls["primary_url"])
    queue = rung.Queue(urls["queue_url"], stream=stream, max_depth=100_000)
    async with db, queue:
        await db.execute(
            "DROP TABLE IF EXISTS ex_clicks; CREATE TABLE ex_clicks "
            "(id uuid PRIMARY KEY, link_id int NOT NULL, clicked_at timestamptz NOT NULL)"
        )
        good = [{"link_id": i % 7, "clicked_at": "2026-11-26T10:00:00Z"} for i in range(1000)]
        bad = {"link_id": None, "clicked_at": "2026-11-26T10:00:01Z"}  # NOT NULL says no
        ids = await queue.put_many([*good, bad])
        print("accepted:", len(ids), "depth:", (await queue.stats())["depth"])

        sink = rung.TableSink(db, table="ex_clicks", columns=("id", "link_id", "clicked_at"),
                              key="id")  # fmt: skip
        await drain_until_empty(queue, rung.Drain(queue, sink, max_deliveries=1))
        print("written:", await db.fetchval("SELECT count(*) FROM ex_clicks"))
        print("dead letters:", (await queue.stats())["dead"])

        await db.execute("ALTER TABLE ex_clicks ALTER COLUMN link_id DROP NOT NULL")
        print("replayed:", await queue.replay_dead())
        await drain_until_empty(queue, rung.Drain(queue, sink))
        print("written after replay:", await db.fetchval("SELECT count(*) FROM ex_clicks"))
        await db.execute("DROP TABLE ex_clicks")


if __name__ == "__main__":
    asyncio.run(main())
