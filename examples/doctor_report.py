"""Ask the doctor from Python: which inflection point the running stack is at, and why.

Run it against a stack started with `rung up` (RUNG_DIR names its directory, default .rung):

    rung up && python examples/doctor_report.py
"""

import asyncio

from rung.doctor import Targets, Verdict, diagnose
from rung.stack import default_dir


async def main() -> None:
    report = await diagnose(Targets.from_stack(default_dir()), timeout=5.0, sample=1.0)
    for finding in report.findings:
        if finding.verdict is not Verdict.ok:  # watch, act, or a check that could not run
            print(f"{finding.verdict}: {finding.area}: {finding.name}: {finding.summary}")
            print(f"    next: {finding.next_step}")
    print(f"verdict: {report.at}")
    for step in report.next:
        print(f"next rung: {step.rung} ({step.verdict}): {step.action}")


asyncio.run(main())
