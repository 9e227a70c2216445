"""`rung drain MODULE:FACTORY`: run the Drain a factory returns, as its own process.

    # app/workers.py
    def clicks() -> rung.Drain:
        db = rung.Database(os.environ["RUNG_PRIMARY_URL"])
        queue = rung.Queue(os.environ["RUNG_QUEUE_URL"], stream="clicks")
        return rung.Drain(queue, rung.TableSink(db, table="clicks", columns=COLS, key="id"))

    $ rung drain app.workers:clicks

The factory may be sync or async. SIGTERM or SIGINT stops the drain cleanly: the batch in
flight is written and acknowledged, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import signal
import sys

from rung.errors import QueueError
from rung.queue._drain import Drain
from rung.queue._sinks import TableSink
from rung.types import DrainStats


async def serve(spec: str) -> DrainStats:
    """Build the drain `spec` names, run it until a signal, close its queue (and a
    TableSink's database); its stats."""
    drain = await build(spec)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, drain.stop)
    try:
        await drain.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await drain.queue.close()
        if isinstance(drain.sink, TableSink):  # the factory's, so this process's to close
            await drain.sink.db.close()
    return drain.stats()


async def build(spec: str) -> Drain:
    """`FACTORY()` from `MODULE` (imported from the working directory too), awaited if
    it returns an awaitable; `QueueError` with one clear line for anything else."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise QueueError(f"expected MODULE:FACTORY (e.g. app.workers:clicks), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise QueueError(f"cannot import {module_name!r}: {e}") from e
    factory = getattr(module, name, None)
    if not callable(factory):
        raise QueueError(f"{module_name!r} has no callable {name!r}")
    try:
        made = factory()
        if inspect.isawaitable(made):
            made = await made
    except Exception as e:
        raise QueueError(f"{spec}() failed: {type(e).__name__}: {e}") from e
    if not isinstance(made, Drain):
        raise QueueError(f"{spec}() returned {type(made).__name__}, not a rung.Drain")
    return made
