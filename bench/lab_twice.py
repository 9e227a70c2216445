"""`rung lab --quick` twice on one stack: is the ladder's ordering the same both times?

Each climb empties rung_links' tables and the cache and seeds them again, so the two runs
start alike. Prints each run's throughput per stage, its ordering and its claims, then
whether the orderings match (exit 1 if not).

    python bench/lab_twice.py               # a throwaway stack, or RUNG_DIR's
    python bench/lab_twice.py --runs 3 --out lab-runs   # each run's report in lab-runs/run-N
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from _common import running_stack

from rung.lab import INSTANCES, STAGES, Lab, Plan, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write each run's report here")
    args = parser.parse_args()
    runs = args.runs
    orderings = []
    with running_stack(replicas=1, instances=INSTANCES, workers=1) as stack:
        for run in range(1, runs + 1):
            results = asyncio.run(Lab(stack, plan=Plan.quick_plan()).climb(STAGES))
            if args.out is not None:
                report.write(results, args.out / f"run-{run}")
            print(f"run {run} ({results['seconds']:.0f} s):")
            for s in results["stages"]:
                print(f"  {s['title']:<14} {s['throughput'] or 0:>7.0f} req/s")
            for c in results["claims"]:
                print(f"  {'held' if c['held'] else 'NOT HELD'}: {c['claim']}: {c['measured']}")
            print(f"  ordering: {results['ordering']}")
            orderings.append(results["ordering"])
    same = len(set(orderings)) == 1
    print("same ordering in every run" if same else "the orderings differ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
