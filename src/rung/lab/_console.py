"""`rung lab` on the terminal: start (or take) a stack, climb with progress bars, report.

    path = lab(dir=None, quick=True, out=Path("rung-lab"), stages=None, console=Console())

With no `dir` the lab starts a throwaway stack (a replica, three instances, a drain worker)
and takes it down afterwards; with one it uses that running stack, and replaces rung_links'
tables there with its own data.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rung.errors import StackError
from rung.lab import _report as report
from rung.lab import _stages as stages
from rung.lab._run import INSTANCES, Lab, Plan
from rung.stack import Stack
from rung.stack._smoke import smoke


def lab(*, dir: Path | None, quick: bool, out: Path, stages_: str | None, console: Console) -> Path:
    """Run the lab and write the report into `out`; the report's index.html."""
    if importlib.util.find_spec("matplotlib") is None:
        raise StackError("the lab's report needs matplotlib: pip install 'rung[lab]'")
    chosen = stages.select(stages_)
    plan = Plan.quick_plan() if quick else Plan.full_plan()
    if dir is not None:
        results = _climb(Stack(dir), plan, chosen, console)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="rung-lab-"))
        workdir.chmod(0o755)
        stack = Stack(workdir / "stack")
        try:
            console.print(
                "starting a stack: a primary, a replica, PgBouncer, two Redis, "
                f"{INSTANCES} app instances, a drain worker, HAProxy"
            )
            result = stack.up(replicas=1, instances=INSTANCES, workers=1)
            console.print(f"stack up in {result.seconds:.1f}s")
            for line in smoke(result.stack):
                console.print(f"[green]✓[/] {line}")
            results = _climb(stack, plan, chosen, console)
        finally:
            stack.down(purge=True)
            shutil.rmtree(workdir, ignore_errors=True)
            console.print("stack down")
    index = report.write(results, out)
    console.print(_table(results))
    for claim in results["claims"]:
        mark = "[green]✓[/]" if claim["held"] else "[red]✗[/]"
        why = f" [dim]({claim['why']})[/]" if claim["why"] else ""
        console.print(f"{mark} {claim['claim']}: {claim['measured']}{why}")
    console.print(f"throughput, stage by stage: {results['ordering']}")
    return index


def _climb(stack: Stack, plan: Plan, chosen: list[stages.Stage], console: Console) -> Any:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[what]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        ladder = progress.add_task("ladder", total=len(chosen), what="")
        current: dict[str, Any] = {}

        def show(event: str, facts: dict[str, Any]) -> None:
            if event == "stage":
                if "task" in current:
                    progress.update(current["task"], completed=plan.steps)
                    progress.advance(ladder)
                stage = facts["stage"]
                current["task"] = progress.add_task(
                    f"{stage.step} {stage.title}", total=plan.steps, what="restarting"
                )
            elif "task" not in current:
                progress.update(ladder, what=_what(event, facts))
            elif event == "stepped":
                step = facts["step"]
                verdict = "ok" if step.ok else "over"
                progress.advance(current["task"])
                progress.update(
                    current["task"],
                    what=f"{step.rate:.0f} req/s: p99 "
                    f"{step.run.percentile(99) * 1000:.0f} ms, {verdict}",
                )
            else:
                progress.update(current["task"], what=_what(event, facts))

        results = asyncio.run(Lab(stack, plan=plan, progress=show).climb(chosen))
        if "task" in current:
            progress.update(current["task"], completed=plan.steps)
        progress.update(ladder, completed=len(chosen), what="done")
    return results


def _what(event: str, facts: dict[str, Any]) -> str:
    if event == "seed":
        return f"seeding {facts['links']:,} links, {facts['clicks']:,} clicks (COPY)"
    if event == "start":
        return f"starting {facts['component']}"
    if event in ("warmup", "step"):
        return f"{event} at {facts['rate']:.0f} req/s"
    if event == "spike":
        return (
            f"write spike to {facts['rate']:.0f} req/s ({'queue' if facts['queue'] else 'direct'})"
        )
    return event


def _table(results: dict[str, Any]) -> Table:
    table = Table(
        "step",
        "stage",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "db stmts/s",
        "replica reads",
        "cache hits",
        title="the ladder, measured",
    )
    for s in results["stages"]:
        statements = sum(n["statements_per_s"] for n in s["db"].values())
        replica = sum(v for k, v in s["read_share"].items() if k != "primary")
        hit = s["cache"]["hit_rate"]
        table.add_row(
            str(s["step"]),
            s["title"],
            _n(s["throughput"]),
            _n(s["latency_ms"]["p50"], 1),
            _n(s["latency_ms"]["p99"], 1),
            str(s["errors"]),
            _n(statements),
            f"{replica:.0%}",
            "—" if hit is None else f"{hit:.0%}",
        )
    return table


def _n(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"
