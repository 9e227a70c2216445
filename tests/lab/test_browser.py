"""The report in a real browser: headless Chromium draws the page, and nothing reaches its
console; two controls prove the console check sees what it looks for.

Chromium started with `--enable-logging=stderr` writes each console message of a page to
stderr at INFO, whatever the message's own level:

    [123:123:1205/215346.897921:INFO:CONSOLE:1] "boom", source: file:///tmp/bad.html (1)

(`INFO:CONSOLE(1)` in older builds); an uncaught exception is one too ("Uncaught Error: ...").
A failed subresource load is not written there: that is why index.html carries a
Content-Security-Policy that blocks every fetch, since Chromium logs a blocked fetch as a
console message ("Loading the image '...' violates the following Content Security Policy ...").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from rung.lab import report

CHROMIUM = Path("/usr/bin/chromium")
SAMPLE = Path(__file__).with_name("sample_results.json")
CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]|Uncaught|Failed to load resource")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs /usr/bin/chromium (Debian's chromium package, which scripts/bootstrap installs)",
)


def chromium(page: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Screenshot `page` in headless Chromium with its log on stderr; the run and the PNG."""
    shot = tmp_path / f"{page.stem}.png"
    profile = tmp_path / f"{page.stem}-profile"
    args = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",  # the tests run as root, where Chromium's sandbox will not start
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--window-size=1200,3000",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--log-level=0",
        f"--screenshot={shot}",
        page.as_uri(),
    ]
    env = {**os.environ, "HOME": str(tmp_path)}
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    return done, shot


def console(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if CONSOLE.search(line)]


def test_the_report_renders_with_nothing_on_the_console(tmp_path: Path) -> None:
    results = json.loads(SAMPLE.read_text(encoding="utf-8"))
    index = report.write(results, tmp_path / "report")
    done, shot = chromium(index, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert console(done) == []
    pixels = matplotlib.image.imread(shot)[..., :3]
    background = pixels[2, 2]  # the page's margin
    drawn = np.any(np.abs(pixels - background) > 0.02, axis=-1)
    assert drawn.mean() > 0.02
    rgb = (pixels[::2, ::2] * 255).round().astype(np.uint32)
    assert len(np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])) > 200


def test_the_console_check_sees_errors_and_uncaught_exceptions(tmp_path: Path) -> None:
    """The control: a page that logs an error and throws is caught, on both counts."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!doctype html><p>x</p><script>console.error("boom"); throw new Error("bang")</script>',
        encoding="utf-8",
    )
    done, _ = chromium(page, tmp_path)
    found = console(done)
    assert any('"boom"' in line for line in found), done.stderr[-2000:]
    assert any("Uncaught Error: bang" in line for line in found), done.stderr[-2000:]


def test_the_reports_policy_puts_any_fetch_on_the_console(tmp_path: Path) -> None:
    """The control: the report with a remote and a local image added is caught, twice."""
    index = report.write(json.loads(SAMPLE.read_text(encoding="utf-8")), tmp_path / "report")
    fetching = '<img src="https://example.invalid/a.png"><img src="b.png"></main>'
    page = tmp_path / "fetching.html"
    page.write_text(index.read_text(encoding="utf-8").replace("</main>", fetching), "utf-8")
    done, _ = chromium(page, tmp_path)
    found = console(done)
    assert any("https://example.invalid/a.png" in line for line in found), done.stderr[-2000:]
    assert any("b.png" in line for line in found), done.stderr[-2000:]
