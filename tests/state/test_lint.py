"""`rung lint`: the rules on fixtures of each trap, the ignore comment, exit codes, and
the three output formats (SARIF validated against the 2.1.0 schema shipped beside it)."""

import json
import re
from pathlib import Path

import jsonschema
import pytest

from rung.state.lint import RULES, lint_paths, lint_source
from tests.helpers import rung

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA = (
    Path(__file__).parent / "sarif-schema-2.1.0.json"
)  # from @microsoft/sarif-multitool 5.7.0 (MIT)
TRAPS = ["module_state.py", "caches_and_sessions.py", "local_files.py", "timers.py", "broken.py"]


def expected(path: Path) -> set[tuple[int, str]]:
    """The `# expect: RUNGxxx` markers of a fixture, as (line, rule)."""
    out = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for rule in re.findall(r"# expect: (RUNG\d{3})", line):
            out.add((number, rule))
    return out


@pytest.mark.parametrize("name", TRAPS)
def test_each_trap_is_reported_on_its_line_and_nothing_else(name: str) -> None:
    path = FIXTURES / name
    found = {(f.line, f.rule) for f in lint_paths([path])}
    assert found == expected(path)


def test_clean_code_has_no_findings() -> None:
    assert lint_paths([FIXTURES / "clean.py"]) == []


def test_every_rule_of_the_three_families_is_exercised() -> None:
    exercised = set().union(*({r for _, r in expected(FIXTURES / n)} for n in TRAPS))
    assert exercised == set(RULES)


def test_an_ignore_comment_drops_only_the_named_rules_on_its_line() -> None:
    source = "x = {}\ndef f():\n    x[1] = 1  # rung: ignore[RUNG101]\n    x[2] = 2\n"
    assert [(f.line, f.rule) for f in lint_source(source, "m.py")] == [(4, "RUNG101")]
    other = "x = {}\ndef f():\n    x[1] = 1  # rung: ignore[RUNG301, RUNG201]\n"
    assert [f.rule for f in lint_source(other, "m.py")] == ["RUNG101"]


def test_every_finding_names_its_fix() -> None:
    findings = lint_paths([FIXTURES])
    assert findings
    assert all(f.fix and f.fix == RULES[f.rule].fix for f in findings)
    assert {f.fix for f in findings if f.rule.startswith("RUNG3")} >= {
        RULES["RUNG301"].fix
    } and "rung.Singleton" in RULES["RUNG301"].fix


def test_the_cli_exits_1_on_findings_0_when_clean_2_on_usage_errors() -> None:
    traps = rung("lint", str(FIXTURES / "timers.py"))
    assert traps.returncode == 1
    assert f"{FIXTURES / 'timers.py'}:42:5: RUNG301" in traps.stdout
    assert "fix: Use rung.Singleton" in traps.stdout
    assert rung("lint", str(FIXTURES / "clean.py")).returncode == 0
    missing = rung("lint", "no/such/dir")
    assert missing.returncode == 2
    assert "no such file or directory: no/such/dir" in missing.stderr
    assert rung("lint", str(FIXTURES), "--format", "xml").returncode == 2
    assert rung("lint").returncode == 2


def test_a_syntax_error_is_reported_and_the_other_files_are_still_checked() -> None:
    done = rung("lint", str(FIXTURES / "broken.py"), str(FIXTURES / "timers.py"))
    assert done.returncode == 1
    assert "broken.py:1:" in done.stdout and "RUNG000" in done.stdout
    assert "RUNG301" in done.stdout
    assert "Traceback" not in done.stderr


def test_json_output_lists_every_finding() -> None:
    done = rung("lint", str(FIXTURES), "--format", "json")
    rows = json.loads(done.stdout)
    assert len(rows) == len(lint_paths([FIXTURES]))
    assert set(rows[0]) == {"path", "line", "col", "rule", "name", "message", "fix"}


def test_sarif_output_validates_against_the_sarif_2_1_0_schema() -> None:
    done = rung("lint", str(FIXTURES), "--format", "sarif")
    assert done.returncode == 1
    log = json.loads(done.stdout)
    jsonschema.validate(log, json.loads(SCHEMA.read_text()))
    run = log["runs"][0]
    assert len(run["results"]) == len(lint_paths([FIXTURES]))
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} == set(RULES)
    clean = json.loads(rung("lint", str(FIXTURES / "clean.py"), "--format", "sarif").stdout)
    jsonschema.validate(clean, json.loads(SCHEMA.read_text()))


def test_rungs_own_source_is_clean() -> None:
    assert lint_paths([Path(__file__).parents[2] / "src"]) == []


@pytest.mark.parametrize("package", ["starlette", "fastapi"])
def test_it_runs_on_real_frameworks_without_crashing(package: str) -> None:
    module = __import__(package)
    root = Path(module.__file__).parent
    done = rung("lint", str(root), "--format", "json")
    assert done.returncode in (0, 1), done.stderr
    rows = json.loads(done.stdout)
    assert not [r for r in rows if r["rule"] == "RUNG000"]
    print(f"{package}: {len(rows)} findings", sorted({r["rule"] for r in rows}))
