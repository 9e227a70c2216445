"""Every example the docs show runs, against the session's real stack (tests/test_docs.py
checks that each copy in the docs is the file)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from rung.testing import RungStack
from tests.helpers import RUNG

EXAMPLES = Path(__file__).parent.parent / "examples"


def _run(args: list[str], rung_stack: RungStack, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNG_DIR": str(rung_stack.dir), **extra}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)


def test_stack_tour_lists_every_component(rung_stack: RungStack) -> None:
    """examples/stack_tour.py prints a healthy line per component."""
    done = _run([sys.executable, str(EXAMPLES / "stack_tour.py")], rung_stack)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.split()[-1] == "healthy"]
    assert [line.split()[0] for line in lines] == list(rung_stack.ports)


def test_the_user_test_example_passes_on_the_shared_stack(rung_stack: RungStack) -> None:
    """examples/test_with_rung_stack.py passes, reusing the running stack through RUNG_DIR."""
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            str(EXAMPLES / "test_with_rung_stack.py")]  # fmt: skip
    done = _run(args, rung_stack)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def _run_notes_app_suite(rung_stack: RungStack, **env: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            str(EXAMPLES / "notes_app")]  # fmt: skip
    return _run(args, rung_stack, **env)


def test_the_notes_app_suite_passes_with_tokens_carried(rung_stack: RungStack) -> None:
    """examples/notes_app: every test reads its writes through AppClient, replicas stale."""
    done = _run_notes_app_suite(rung_stack)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout


def test_the_notes_app_suite_fails_without_carrying_tokens(rung_stack: RungStack) -> None:
    """The control: with NOTES_CARRY_TOKENS=0 the reads go to the stale replicas and miss
    the writes (only the 404 test still passes)."""
    done = _run_notes_app_suite(rung_stack, NOTES_CARRY_TOKENS="0")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "3 failed, 1 passed" in done.stdout


def test_read_your_writes_example_shows_stale_and_fresh_reads(rung_stack: RungStack) -> None:
    """examples/read_your_writes.py: the writer and the token see the row, no token does not."""
    done = _run([sys.executable, str(EXAMPLES / "read_your_writes.py")], rung_stack)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(":", 1) for line in done.stdout.splitlines())
    assert lines["writer sees"].strip() == "hello"
    assert lines["no token"].strip() == "None"
    assert lines["with token"].strip() == "hello"


def test_cache_aside_example_refills_with_the_new_row(rung_stack: RungStack) -> None:
    """examples/cache_aside.py: a hit, then a refill that reads past the stale replica."""
    done = _run([sys.executable, str(EXAMPLES / "cache_aside.py")], rung_stack)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
    assert lines["first call"].strip() == "https://old.example"
    assert lines["second call"].strip() == "https://old.example"
    assert lines["stale replica"].strip() == "https://old.example"
    assert lines["refill"].strip() == "https://new.example"
    assert done.stdout.splitlines()[-1] == "hits=1 misses=2 loads=2"


def test_queue_leveller_example_drains_parks_and_replays(rung_stack: RungStack) -> None:
    """examples/queue_leveller.py: 1,000 written, 1 dead letter, replayed, 1,001 written."""
    done = _run([sys.executable, str(EXAMPLES / "queue_leveller.py")], rung_stack)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "accepted: 1001 depth: 1001",
        "written: 1000",
        "dead letters: 1",
        "replayed: 1",
        "written after replay: 1001",
    ]


def test_sessions_example_shares_the_login_across_instances(rung_stack: RungStack) -> None:
    done = _run([sys.executable, str(EXAMPLES / "sessions_two_instances.py")], rung_stack)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "instance A set: rung_session (HttpOnly, SameSite=Lax)",
        "instance B sees: ann",
        "a forged cookie sees: {'user': None}",
    ]


def test_singleton_example_runs_each_tick_once(rung_stack: RungStack) -> None:
    done = _run([sys.executable, str(EXAMPLES / "singleton_timer.py")], rung_stack)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert int(lines["runs"].split()[0]) in range(7, 10)
    assert lines["tokens increase"] == "True"


def test_lint_finds_the_traps_of_the_stateful_example(rung_stack: RungStack) -> None:
    done = _run([RUNG, "lint", str(EXAMPLES / "stateful_app.py")], rung_stack)
    assert done.returncode == 1, done.stderr
    rules = [line.split()[1] for line in done.stdout.splitlines() if ": RUNG" in line]
    assert rules == ["RUNG101", "RUNG104", "RUNG201", "RUNG304"]


def test_db_in_an_app_example_shows_each_piece(rung_stack: RungStack) -> None:
    """examples/db_in_an_app.py: the error boundary, a hidden write, after-commit failures,
    token merging and a pinned block, each as its docs page says."""
    done = _run([sys.executable, str(EXAMPLES / "db_in_an_app.py")], rung_stack)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "caller's bug: InterfaceError",
        "nodes healthy: True",
        "hidden write: True",
        "committed: True failures: 2",
        "carried token is ours: True",
        "pinned reads served by one node: True",
    ]


def test_web_two_instances_example_reads_its_write_through_the_other(
    rung_stack: RungStack,
) -> None:
    done = _run([sys.executable, str(EXAMPLES / "web_two_instances.py")], rung_stack)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "A wrote, cookie set: True",
        "B with the cookie: hello",
        "B without it: None",
        "B with a forged token: None 200",
    ]


def test_the_lab_results_example_reads_a_report() -> None:
    """examples/lab_results.py over a real run's results.json: a line per stage, the
    ordering, and each claim that did not hold."""
    sample = EXAMPLES.parent / "tests" / "lab" / "sample_results.json"
    done = subprocess.run([sys.executable, str(EXAMPLES / "lab_results.py"), str(sample)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads(sample.read_text())
    lines = done.stdout.splitlines()
    stages = len(results["stages"])
    assert [line.split()[0] for line in lines[:stages]] == [
        s["title"].split()[0] for s in results["stages"]
    ]
    assert lines[stages] == f"ordering: {results['ordering']}"
    assert len(lines) == stages + 1 + sum(not c["held"] for c in results["claims"])
