"""What the doctor's tests share: picking findings out of a report, and a small stack that
runs rung_links behind HAProxy."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

from rung.doctor import Finding, Report
from rung.stack import Stack

REPO = Path(__file__).parents[2]


def named(report: Report, prefix: str) -> list[Finding]:
    return [f for f in report.findings if f.name.startswith(prefix)]


def urls(stack: Stack) -> dict[str, str]:
    record = stack.running()
    assert record is not None
    found: dict[str, str] = record.urls()
    return found


@contextlib.contextmanager
def links_stack(prefix: str) -> Iterator[Stack]:
    """Two rung_links instances behind HAProxy, no replica, no drain worker; down after."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    workdir.chmod(0o755)  # the unprivileged server user must reach it
    stack = Stack(workdir / "stack")
    try:
        with contextlib.chdir(REPO), mock.patch.dict(os.environ, {"RUNG_GRACE": "1.5"}):
            stack.up(replicas=0, instances=2, workers=0)
        yield stack
    finally:
        stack.down(purge=True)
        shutil.rmtree(workdir, ignore_errors=True)
