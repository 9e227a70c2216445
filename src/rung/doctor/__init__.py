"""`rung doctor`: which inflection point a system has hit, and what to do next.

    report = await rung.doctor.diagnose(rung.doctor.Targets(db=url, cache=cache_url))
    report.at; [step.rung for step in report.next]; print(rung.doctor.to_json(report))

Each check gives a `Finding` (area, name, verdict ok/watch/act or unreachable, evidence,
next step); the report closes with the rung the system is at and the rungs to take next.
The JSON form is described by `SCHEMA` (report.schema.json beside this file).
"""

import json
from importlib import resources
from typing import Any

from rung.doctor._model import RUNGS, Finding, Report, Step, Verdict
from rung.doctor._render import to_dict, to_json, to_markdown, to_text
from rung.doctor._run import diagnose
from rung.doctor._targets import Targets

SCHEMA: dict[str, Any] = json.loads(
    resources.files(__name__).joinpath("report.schema.json").read_text(encoding="utf-8")
)

__all__ = [
    "RUNGS",
    "SCHEMA",
    "Finding",
    "Report",
    "Step",
    "Targets",
    "Verdict",
    "diagnose",
    "to_dict",
    "to_json",
    "to_markdown",
    "to_text",
]
