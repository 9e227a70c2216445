"""A tour of rung_links on the running stack: sign up, log in, create a link, follow it,
watch the click go through the queue into the table, read the stats, disable the link.

    rung up --replicas 1 && python examples/links_tour.py

The app runs in this process (rung.testing.AppClient: each request in a fresh context, the
consistency token carried like a cookie), on the stack's database, Redis servers and
queue, as `rung up --instances N` runs it behind HAProxy.
"""

import asyncio
import secrets

from rung.stack import Stack, default_dir
from rung.testing import AppClient
from rung_links import drain
from rung_links.app import create_app, services
from rung_links.settings import Settings


async def main() -> None:
    stack = Stack(default_dir()).running()
    assert stack is not None, "start a stack first: rung up"
    urls = stack.urls()
    settings = Settings(
        primary_url=urls["primary_url"],
        replica_urls=tuple(urls["replica_urls"]),
        cache_url=urls["cache_url"],
        queue_url=urls["queue_url"],
        secret=secrets.token_hex(32),  # the same on every instance, in real life
        jobs=False,  # the stats below read today's clicks; the rollup is for past days
    )
    app = create_app(settings)
    async with AppClient(app, db=services(app).db) as client:
        who = {"email": f"tour-{secrets.token_hex(4)}@example.com", "password": "tour-password"}
        print("signup:", (await client.post("/api/signup", json=who)).status_code)
        print("login:", (await client.post("/api/login", json=who)).status_code)

        slug = f"tour-{secrets.token_hex(4)}"
        link = {"target_url": "https://example.com/rung", "slug": slug}
        print("create:", (await client.post("/api/links", json=link)).status_code)

        followed = await client.get(f"/r/{slug}")
        print("redirect:", followed.status_code, followed.headers["location"])

        # The click is on the queue, not in the table: a drain writes it (`rung drain
        # rung_links.drain:make` as a process; here, for a moment, in this one).
        db = services(app).db

        async def clicks() -> int:
            count: int = await db.fetchval(
                "SELECT count(*) FROM clicks JOIN links ON links.id = link_id WHERE slug = $1",
                slug,
            )
            return count

        worker = drain.make(settings, db=db)
        running = asyncio.create_task(worker.run())
        async with asyncio.timeout(10.0):
            while await clicks() == 0:  # noqa: ASYNC110 - polling the table is the point
                await asyncio.sleep(0.01)
        worker.stop()
        await running
        await worker.queue.close()
        print("clicks in the table:", await clicks())

        stats = (await client.get(f"/api/links/{slug}/stats")).json()
        print("stats:", stats["clicks"], "click(s) today")

        print(
            "disable:",
            (await client.patch(f"/api/links/{slug}", json={"disabled": True})).status_code,
        )
        print("redirect:", (await client.get(f"/r/{slug}")).status_code)


if __name__ == "__main__":
    asyncio.run(main())
