"""Helpers shared by the tests."""

import asyncio
import contextvars
import inspect
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

RUNG = str(Path(sys.executable).parent / "rung")


def rung(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run the installed `rung` command; its exit code and output."""
    return subprocess.run([RUNG, *args], capture_output=True, text=True, timeout=timeout)


async def in_fresh_context(aw: Awaitable[T]) -> T:
    """Run `aw` as another request (another instance) would: no consistency token."""

    async def run() -> T:
        return await aw

    return await asyncio.create_task(run(), context=contextvars.Context())


async def poll(condition: Callable[[], Any], within: float = 10.0) -> None:
    """Await `condition()` (sync or async) every 10 ms until it is true; AssertionError
    after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert loop.time() < deadline, f"condition not met within {within}s"
        await asyncio.sleep(0.01)
