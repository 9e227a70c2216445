"""An ORM read through a rung.sqlalchemy routing session (routed to the replica) against a
plain SQLAlchemy AsyncSession on the same replica, in one run.

Each operation opens a session, loads one row by primary key (`session.get`), and closes
the session: what a request does. Both engines have the same pool; rounds interleave.

    python bench/sqlalchemy_router.py     # starts a throwaway stack (or set RUNG_DIR)
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from _common import rate, report, seed_items, stack_urls
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import rung
import rung.sqlalchemy

TASKS = 16
POOL = 8
SECONDS = 3.0
ROUNDS = 3


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bench_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


def engine(url: str) -> Any:
    return create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1),
                               pool_size=POOL, max_overflow=0)  # fmt: skip


async def main(primary: str, replica: str) -> dict[str, Any]:
    await seed_items(primary)
    plain_engine = engine(replica)
    Plain = async_sessionmaker(plain_engine)
    db = rung.Database(primary, [replica], min_size=1, max_size=2)
    routed_engines = [engine(primary), engine(replica)]
    Routed = rung.sqlalchemy.sessionmaker(
        db, primary=routed_engines[0], replicas=routed_engines[1:]
    )

    async def plain(i: int) -> object:
        async with Plain() as session:
            return await session.get(Item, i % 1000 + 1)

    async def routed(i: int) -> object:
        async with Routed() as session:
            return await session.get(Item, i % 1000 + 1)

    results: dict[str, list[float]] = {"plain": [], "routed": []}
    async with db:
        for op in (plain, routed):  # warm both pools
            await rate(op, tasks=TASKS, seconds=0.5)
        for r in range(ROUNDS):
            order = [("plain", plain), ("routed", routed)]
            for name, op in order if r % 2 == 0 else order[::-1]:
                results[name].append(await rate(op, tasks=TASKS, seconds=SECONDS))
        stats = db.stats()
        assert stats["primary"]["queries"] == 0, "reads must have gone to the replica"
    for e in (plain_engine, *routed_engines):
        await e.dispose()
    med = {k: statistics.median(v) for k, v in results.items()}
    return {
        "plain_async_session_per_s": round(med["plain"]),
        "rung_routing_session_per_s": round(med["routed"]),
        "ratio_routed_vs_plain": round(med["routed"] / med["plain"], 3),
        "rounds_plain": " / ".join(str(round(v)) for v in results["plain"]),
        "rounds_routed": " / ".join(str(round(v)) for v in results["routed"]),
    }


if __name__ == "__main__":
    with stack_urls(replicas=1) as urls:
        out = asyncio.run(main(urls["primary_url"], urls["replica_urls"][0]))
    report(out, "get/s")
