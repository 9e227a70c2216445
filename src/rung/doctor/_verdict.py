"""The closing verdict: which inflection point the findings put the system at, and the
rungs to take next, in order.

    report = verdict(findings, checked_at="2026-11-25T10:00:00+00:00")
    report.at, [step.rung for step in report.next]

Order: the rungs with an `act` finding first, then those with only `watch`, each group in
the ladder's order (RUNGS), since a lower rung's fix changes what the higher rungs see (an
index can make a replica unnecessary; pooling comes before more instances multiply
connections).
"""

from __future__ import annotations

from rung.doctor._model import RUNGS, Finding, Report, Step, Verdict


def verdict(findings: list[Finding], *, checked_at: str) -> Report:
    steps: list[Step] = []
    for level in (Verdict.act, Verdict.watch):
        taken = {step.rung for step in steps}
        for rung, action in RUNGS.items():
            if rung in taken:
                continue
            behind = [f for f in findings if f.rung == rung and f.verdict is level]
            if behind:
                evidence = [f"{f.area}: {f.name}: {f.summary}" for f in behind]
                steps.append(Step(rung, action, level, evidence))
    return Report(findings, _at(steps, findings), steps, checked_at)


def _at(steps: list[Step], findings: list[Finding]) -> str:
    missed = sum(f.verdict is Verdict.unreachable for f in findings)
    note = f" ({missed} check{'s' * (missed != 1)} could not run)" if missed else ""
    if not steps and missed:
        return f"no inflection point in what could be checked{note}"
    if not steps:
        return "no inflection point reached: every check is ok"
    first = steps[0]
    where = "at" if first.verdict is Verdict.act else "approaching"
    return f"{where} the {first.rung} inflection point: {first.evidence[0]}{note}"
