"""The whole climb on a real stack, shrunk: every stage runs, measures something real, and
the report holds it. The plan is tiny (half-second steps), so these tests check that the
lab measures and reports, not what the numbers are: bench-sized runs are `rung lab`'s."""

from __future__ import annotations

import asyncio
import html
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rung.errors import StackError
from rung.lab import INSTANCES, STAGES, Lab, Plan, report
from rung.stack import Stack

TINY = replace(
    Plan.quick_plan(),
    links=500,
    clicks=20_000,
    step_seconds=0.5,
    steps=2,
    warmup_seconds=0.3,
    start_rate=20.0,
    spike_base_seconds=0.5,
    spike_seconds=0.5,
    warm_links=50,
    warm_stats=10,
)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    workdir = Path(tempfile.mkdtemp(prefix="rung-lab-"))
    workdir.chmod(0o755)  # the unprivileged server user must reach it
    stack = Stack(workdir / "stack")
    try:
        stack.up(replicas=1, instances=INSTANCES, workers=1)
        yield stack
    finally:
        stack.down(purge=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def results(stack: Stack) -> dict[str, Any]:
    events: list[str] = []
    lab = Lab(stack, plan=TINY, progress=lambda event, _: events.append(event))
    climbed = asyncio.run(lab.climb(STAGES))
    assert events.count("stage") == len(STAGES) and "spike" in events
    return climbed


def test_every_stage_measures_real_traffic(results: dict[str, Any]) -> None:
    assert [s["id"] for s in results["stages"]] == [s.id for s in STAGES]
    for stage in results["stages"]:
        assert stage["requests"] > 0 and stage["latency_ms"]["p50"] > 0, stage["id"]
        assert stage["stats_query_ms"] > 0, stage["id"]  # timed on every stage, idle
        if results["boxes"]["enforced"]:  # each instance that ran is in the throttle count
            running = {f"app{i}" for i in range(1, stage["instances"] + 1)}
            assert running <= stage["throttled"].keys() <= running | {
                "primary", "replica", "redis", "haproxy+pgbouncer", "drain1",
            }, stage["id"]  # fmt: skip
        # Shares of the reads counted on each node add up to 1 once any was counted; with
        # the cache on, a step may have sent none to the database.
        if stage["cache"]["hit_rate"] is None:
            assert sum(stage["read_share"].values()) == pytest.approx(1.0, abs=0.01), stage["id"]
    many = {s["id"]: s["instances"] for s in results["stages"]}
    assert many["cache"] == 1 and many["instances"] == many["queue"] == INSTANCES


def test_each_stage_is_the_configuration_it_names(results: dict[str, Any]) -> None:
    stages = {s["id"]: s for s in results["stages"]}
    # A replica takes reads only once the service is given one, and the cache counts only
    # where it is on.
    assert stages["pgbouncer"]["read_share"].get("replica1", 0.0) == 0.0
    assert stages["replica"]["read_share"]["replica1"] > 0.5
    assert stages["replica"]["cache"]["hit_rate"] is None
    assert stages["cache"]["cache"]["hit_rate"] is not None
    assert stages["naive"]["cache"]["db_reads_per_redirect"] == pytest.approx(1.0, abs=0.05)


def test_the_spike_loses_no_click_in_either_mode(results: dict[str, Any]) -> None:
    spike = results["spike"]
    for mode in ("direct", "queue"):
        clicks = spike[mode]["clicks"]
        assert clicks["answered"] > 0 and clicks["lost"] == 0, (mode, clicks)
    assert any(row["depth"] is not None for row in spike["queue"]["timeline"])


def test_the_claims_and_the_ordering_cover_the_ladder(results: dict[str, Any]) -> None:
    assert len(results["claims"]) == 7
    for claim in results["claims"]:
        assert claim["measured"] and (claim["held"] or claim["why"]), claim
    words = results["ordering"].split()
    assert words[::2] == [s.id for s in STAGES] and set(words[1::2]) <= {"<", "=", ">", "?"}


def test_the_report_holds_the_results(results: dict[str, Any], tmp_path: Path) -> None:
    index = report.write(results, tmp_path)
    page = index.read_text()
    assert "The seed's claims, measured" in page and html.escape(results["ordering"]) in page
    assert json.loads((tmp_path / "results.json").read_text())["stages"] == results["stages"]
    charts = sorted(tmp_path.glob("charts/*.png"))
    assert len(charts) == 4 and all(c.stat().st_size > 5_000 for c in charts)


def test_the_lab_refuses_a_stack_without_what_it_measures(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="no stack runs"):
        Lab(Stack(tmp_path / "none"), plan=TINY)
