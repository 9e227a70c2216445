"""Read a lab report's results.json: the ladder's throughput, and the claims that did not
hold on this machine, with the reason.

    rung lab --quick --out rung-lab && python examples/lab_results.py rung-lab/results.json
"""

import json
import sys
from pathlib import Path

results = json.loads(Path(sys.argv[1]).read_text())
for stage in results["stages"]:
    p99 = stage["latency_ms"]["p99"]
    print(f"{stage['title']:<14} {stage['throughput'] or 0:>7.0f} req/s  p99 {p99} ms")
print("ordering:", results["ordering"])
for claim in results["claims"]:
    if not claim["held"]:
        print(f"did not hold: {claim['claim']}: {claim['measured']} ({claim['why']})")
