"""`rung doctor`: which inflection point a system has hit, and what to do next.

    report = await rung.doctor.diagnose(rung.doctor.Targets(db=url, cache=cache_url))
    report.at; [step.rung for step in report.next]; print(rung.doctor.to_json(report))

Each check gives a `Finding` (area, name, verdict ok/watch/act or unreachable, evidence,
next step); the report closes with the rung the system is at and the rungs to take next.
The JSON form is described by `SCHEMA` (report.schema.json beside this file).
"""

from rung.doctor import _app, _model, _plans, _verdict
from rung.doctor._model import RUNGS, Finding, Report, Step, Verdict
from rung.doctor._render import to_dict, to_json, to_markdown, to_text
from rung.doctor._run import diagnose
from rung.doctor._schema import SCHEMA
from rung.doctor._targets import Targets

# Implementation modules under a public name, for their own unit tests (tests/doctor).
app = _app
model = _model
plans = _plans
verdicts = _verdict

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
