"""Helpers shared by the tests."""

import asyncio
import contextvars
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

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
