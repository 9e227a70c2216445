"""The report as text (rich), JSON (report.schema.json) or markdown.

print(to_json(report)); print(to_markdown(report)); to_text(report, Console())
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from rung.doctor._model import Finding, Report, Verdict

if TYPE_CHECKING:  # rich comes with the cli extra; only the text form needs it
    from rich.console import Console

_STYLE = {Verdict.ok: "green", Verdict.watch: "yellow", Verdict.act: "red",
          Verdict.unreachable: "magenta"}  # fmt: skip


def to_dict(report: Report) -> dict[str, Any]:
    return {"schema": "rung-doctor/1", **dataclasses.asdict(report)}


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2) + "\n"


def to_text(report: Report, console: Console) -> None:
    """One line per finding (its next step below it unless ok), then the verdict."""
    area = ""
    for f in report.findings:
        if f.area != area:
            area = f.area
            console.print(f"\n[bold]{area}[/]")
        style = _STYLE[f.verdict]
        console.print(f"  [{style}]{f.verdict:<11}[/] {f.name}: {f.summary}", soft_wrap=True,
                      highlight=False)  # fmt: skip
        if f.verdict is not Verdict.ok:
            console.print(f"              next: {f.next_step}", soft_wrap=True, highlight=False)
    console.print(f"\n[bold]Verdict:[/] {report.at}", soft_wrap=True, highlight=False)
    for i, step in enumerate(report.next, 1):
        console.print(f"  {i}. [{_STYLE[step.verdict]}]{step.verdict}[/] {step.rung}: "
                      f"{step.action}", soft_wrap=True, highlight=False)  # fmt: skip
        for line in step.evidence:
            console.print(f"     - {line}", soft_wrap=True, highlight=False)


def to_markdown(report: Report) -> str:
    lines = [f"# rung doctor, {report.checked_at}", "", "| area | check | verdict | what was "
             "seen | next step |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [_row(f) for f in report.findings]
    lines += ["", f"**Verdict:** {_cell(report.at)}", ""]
    for i, step in enumerate(report.next, 1):
        lines.append(f"{i}. **{step.rung}** ({step.verdict}): {step.action}")
        lines += [f"   - {_cell(e)}" for e in step.evidence]
    return "\n".join(lines) + "\n"


def _row(f: Finding) -> str:
    step = "" if f.verdict is Verdict.ok else f.next_step
    cells = (f.area, f.name, f"**{f.verdict}**", f.summary, step)
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
