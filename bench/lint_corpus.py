"""`rung lint` on real applications: recall on labeled traps, look-alikes flagged.

    python bench/lint_corpus.py                   # every repo in bench/lint_corpus/
    python bench/lint_corpus.py --holdout         # the held-out labels (bench/lint_corpus/holdout/)
    python bench/lint_corpus.py --misses          # also list missed traps and flagged look-alikes
    python bench/lint_corpus.py --speed           # one tree of the snapshots, taken in turn
                                                  # (the last in part) until it passes a
                                                  # million lines, linted whole, timed

Each bench/lint_corpus/OWNER__NAME.json names a public repository, the commit its labels
were made against, and its labels: a trap or a safe look-alike, its family (state, disk,
timer: RUNG1xx, RUNG2xx, RUNG3xx), path, line and why. The repository's code is not kept
here: it is read from a snapshot that the search tool's `fetch` put under /work/.mirror
(OWNER+NAME/repo, a bare git directory), its Python files checked out at that commit
into a scratch directory (snapshots lack files of 4 MiB and more), and linted whole, as
`rung lint DIR --format json`.

A trap counts as found when a finding of its family lies within 2 lines of the label; a
look-alike counts as flagged when any finding does.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent / "lint_corpus"
MIRROR = Path(os.environ.get("RUNG_MIRROR", "/work/.mirror"))
SCRATCH = Path(os.environ.get("RUNG_CORPUS_DIR", "/tmp/rung-lint-corpus"))
FAMILIES = {"state": "1", "disk": "2", "timer": "3"}
NEAR = 2
SPEED_LINES = 1_000_000


@dataclass
class Score:
    repo: str
    lines: int = 0
    findings: int = 0
    seconds: float = 0.0
    traps: int = 0
    found: int = 0
    safes: int = 0
    flagged: int = 0
    misses: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)


def checkout(repo: str, commit: str) -> Path:
    """The repository's tree at `commit`, extracted once into the scratch directory."""
    owner_name = repo.replace("/", "+")
    target = SCRATCH / f"{owner_name}@{commit[:12]}"
    if target.exists():
        return target
    git_dir = MIRROR / owner_name / "repo"
    if not git_dir.exists():
        sys.exit(f"no snapshot of {repo} at {git_dir}: fetch github:{repo} first")
    archive = subprocess.run(
        ["git", "--git-dir", str(git_dir), "archive", "--format=tar", commit, ":(glob)**/*.py"],
        capture_output=True, check=False,
    )  # fmt: skip
    if archive.returncode:
        sys.exit(f"{repo}: {archive.stderr.decode().strip()}")
    partial = target.with_suffix(".partial")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(partial, filter="data")
    partial.rename(target)
    return target


def python_lines(root: Path) -> int:
    return sum(
        python_lines_of(path)
        for path in root.rglob("*.py")
        if path.is_file() and not path.is_symlink()
    )


def python_lines_of(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def lint(root: Path) -> tuple[list[dict[str, Any]], float]:
    """`rung lint ROOT --format json`: its findings, and the seconds it took."""
    started = time.perf_counter()
    run = subprocess.run(
        [str(Path(sys.executable).parent / "rung"), "lint", str(root), "--format", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if run.returncode not in (0, 1):
        sys.exit(f"{root}: rung lint exited {run.returncode}: {run.stderr.strip()}")
    return json.loads(run.stdout), seconds


def score(spec: dict[str, object]) -> Score:
    repo, commit = str(spec["repo"]), str(spec["commit"])
    root = checkout(repo, commit)
    findings, seconds = lint(root)
    at: dict[str, list[tuple[int, str]]] = {}
    for f in findings:
        at.setdefault(str(Path(f["path"]).relative_to(root)), []).append((f["line"], f["rule"]))
    s = Score(repo, python_lines(root), len(findings), seconds)
    for label in spec["labels"]:  # type: ignore[attr-defined]
        near = [
            rule for line, rule in at.get(label["path"], ()) if abs(line - label["line"]) <= NEAR
        ]
        where = f"{repo} {label['path']}:{label['line']} [{label['family']}] {label['why']}"
        if label["kind"] == "trap":
            s.traps += 1
            if any(rule[4] == FAMILIES[label["family"]] for rule in near):
                s.found += 1
            else:
                s.misses.append(where + (f" (near: {', '.join(near)})" if near else ""))
        else:
            s.safes += 1
            if near:
                s.flagged += 1
                s.false.append(f"{where} (flagged: {', '.join(near)})")
    return s


def speed(specs: list[dict[str, object]]) -> None:
    """The snapshots under one directory, taken whole in name order (and again from the
    first) while they fit in SPEED_LINES lines, then the next one file by file (in path
    order) until the tree passes SPEED_LINES: `rung lint` of it, timed. The directory is
    named for the snapshots it holds, so a corpus that changed builds anew."""
    held = "\n".join(sorted(f"{spec['repo']}@{spec['commit']}" for spec in specs))
    tree = SCRATCH / f"speed-{hashlib.sha256(held.encode()).hexdigest()[:12]}-files"
    if not tree.exists():
        partial = tree.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        lines, copy = 0, 0
        while lines < SPEED_LINES:
            for spec in specs:
                root = checkout(str(spec["repo"]), str(spec["commit"]))
                size = python_lines(root)
                if lines + size <= SPEED_LINES:
                    shutil.copytree(root, partial / str(copy) / root.name, symlinks=True)
                    lines += size
                    continue
                for path in sorted(root.rglob("*.py")):  # the last snapshot, in part
                    if lines >= SPEED_LINES:
                        break
                    if path.is_file() and not path.is_symlink():
                        target = partial / str(copy) / root.name / path.relative_to(root)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(path, target)
                        lines += python_lines_of(target)
                break
            copy += 1
        partial.rename(tree)
    findings, seconds = lint(tree)
    unparsed = sum(1 for f in findings if f["rule"] == "RUNG000")
    files = sum(1 for p in tree.rglob("*.py") if p.is_file())
    print(f"{python_lines(tree):,} lines of Python in {files:,} files linted whole in "
          f"{seconds:.1f} s ({len(findings):,} findings, {unparsed} RUNG000)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--holdout", action="store_true", help="score the held-out labels")
    parser.add_argument("--misses", action="store_true", help="list misses and false flags")
    parser.add_argument("--speed", action="store_true", help="time a tree of just over 1M lines")
    args = parser.parse_args()
    specs = sorted((HERE / "holdout" if args.holdout else HERE).glob("*.json"))
    if args.speed:
        return speed([json.loads(path.read_text()) for path in specs])
    scores = [score(json.loads(path.read_text())) for path in specs]
    print(f"{'repository':34} {'lines':>7} {'finds':>5} {'/kloc':>5} {'s':>5} "
          f"{'traps':>7} {'look-alikes':>11}")  # fmt: skip
    for s in scores:
        print(f"{s.repo:34} {s.lines:7} {s.findings:5} {1000 * s.findings / max(s.lines, 1):5.1f} "
              f"{s.seconds:5.2f} {s.found:3}/{s.traps:<3} {s.flagged:5}/{s.safes:<5}")  # fmt: skip
    traps, found = sum(s.traps for s in scores), sum(s.found for s in scores)
    safes, flagged = sum(s.safes for s in scores), sum(s.flagged for s in scores)
    lines, findings = sum(s.lines for s in scores), sum(s.findings for s in scores)
    print(f"\n{len(scores)} repositories, {lines:,} lines of Python, "
          f"{1000 * findings / max(lines, 1):.2f} findings per 1,000 lines, "
          f"{sum(s.seconds for s in scores):.1f} s of linting")  # fmt: skip
    print(f"traps found: {found}/{traps} = {found / max(traps, 1):.0%}")
    print(f"look-alikes flagged: {flagged}/{safes} = {flagged / max(safes, 1):.0%}")
    if args.misses:
        print("\nmissed traps:", *sorted(m for s in scores for m in s.misses), sep="\n  ")
        print("\nflagged look-alikes:", *sorted(m for s in scores for m in s.false), sep="\n  ")


if __name__ == "__main__":
    main()
