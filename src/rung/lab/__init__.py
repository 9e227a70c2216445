"""The lab: climb the ladder on rung_links and measure what each rung buys (`rung lab`).

from rung.lab import STAGES, Lab, Plan, report
results = await Lab(Stack(".rung"), plan=Plan.quick(), progress=print).climb(STAGES)
report.write(results, Path("lab"))
"""

from rung.lab import _boxes, _claims, _load, _report, _stages, _workload
from rung.lab._run import INSTANCES, Lab, Plan
from rung.lab._stages import STAGES

__all__ = ["INSTANCES", "STAGES", "Lab", "Plan"]

# Internal modules under public names, for their own unit tests (`from rung.lab import load`)
# and the report (`report.write`); modules, so not in __all__ (tests/test_public_api.py pins
# this list).
boxes = _boxes
claims = _claims
load = _load
report = _report
stages = _stages
workload = _workload
