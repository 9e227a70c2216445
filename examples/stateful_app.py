"""An app with the three traps that stop scaling out, for `rung lint` to find:

rung lint examples/stateful_app.py
"""

import asyncio
import functools
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

hits: dict[str, int] = {}  # in-process state


async def count(request: Request) -> JSONResponse:
    slug = request.path_params["slug"]
    hits[slug] = hits.get(slug, 0) + 1  # RUNG101: each instance counts its own
    return JSONResponse({"hits": hits[slug]})


@functools.lru_cache(maxsize=1024)
def owner_of(conn: object, slug: str) -> str:  # RUNG104: a per-process cache of a query
    return str(conn.execute("SELECT owner FROM links WHERE slug = %s", (slug,)))  # type: ignore[attr-defined]


def save_snapshot() -> None:
    with open("snapshot.json", "w") as f:  # RUNG201: a file other instances never see
        json.dump(hits, f)


async def flush_every_minute() -> None:
    while True:
        await asyncio.sleep(60)
        save_snapshot()


async def startup() -> None:
    # RUNG304: with N instances, N timers
    asyncio.create_task(flush_every_minute())  # noqa: RUF006


app = Starlette(on_startup=[startup])
