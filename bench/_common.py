"""The stack a benchmark runs on: the one `RUNG_DIR` names, else a throwaway one.

with stack_urls(replicas=1) as urls:
    asyncio.run(main(urls["cache_url"]))
with running_stack(replicas=2) as stack:      # to SIGSTOP a component: stack.signal(...)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg

from rung.stack import Stack


@contextlib.contextmanager
def stack_urls(*, replicas: int = 1) -> Iterator[dict[str, Any]]:
    with running_stack(replicas=replicas) as stack:
        record = stack.running()
        assert record is not None, "no running stack"
        yield record.urls()


@contextlib.contextmanager
def running_stack(*, replicas: int = 1, instances: int = 0, workers: int = 0) -> Iterator[Stack]:
    """The stack `RUNG_DIR` names, else a throwaway one with `replicas` replicas, and
    `instances` app instances and `workers` drain workers of rung_links."""
    own = None
    if os.environ.get("RUNG_DIR"):
        stack = Stack(os.environ["RUNG_DIR"])
    else:
        own = Path(tempfile.mkdtemp(prefix="rung-bench-"))
        own.chmod(0o755)  # the unprivileged server user must reach it
        stack = Stack(own / "stack")
        stack.up(replicas=replicas, instances=instances, workers=workers)
    try:
        yield stack
    finally:
        if own is not None:
            stack.down(purge=True)
            shutil.rmtree(own, ignore_errors=True)


@contextlib.contextmanager
def frozen(stack: Stack, name: str) -> Iterator[None]:
    """Component `name` SIGSTOPped (hung: sockets open, no answers) for the block."""
    stack.signal(name, signal.SIGSTOP)
    try:
        yield
    finally:
        stack.signal(name, signal.SIGCONT)


async def rate(op: Callable[[int], Awaitable[object]], *, tasks: int, seconds: float) -> float:
    """Calls per second of `tasks` tasks looping `await op(i)` for `seconds`; task t passes
    i = t, t + tasks, t + 2·tasks, ..."""
    count = 0
    deadline = time.monotonic() + seconds

    async def loop(i: int) -> None:
        nonlocal count
        while time.monotonic() < deadline:
            await op(i)
            count += 1
            i += tasks

    began = time.monotonic()
    await asyncio.gather(*(loop(t) for t in range(tasks)))
    return count / (time.monotonic() - began)


def report(out: dict[str, Any], unit: str) -> None:
    """Print `out` as JSON, then as a table."""
    print(json.dumps(out, indent=2))
    print(f"{'variant':<40}{unit:>14}")
    for key, value in out.items():
        print(f"{key:<40}{value:>14}")


async def seed_items(primary: str) -> None:
    """bench_items: 1,000 rows to read, on the primary and (after a moment) its replicas."""
    conn = await asyncpg.connect(primary)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS bench_items (id int PRIMARY KEY, name text);"
        "INSERT INTO bench_items SELECT g, 'item ' || g FROM generate_series(1, 1000) g "
        "ON CONFLICT DO NOTHING"
    )
    await conn.close()
    await asyncio.sleep(0.5)  # replicated
