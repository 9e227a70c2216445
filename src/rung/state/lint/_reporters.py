"""`rung lint` output: text for people, JSON for scripts, SARIF 2.1.0 for code-scanning
tools (GitHub, GitLab, VS Code's SARIF viewer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from rung.state.lint._finding import Finding
from rung.state.lint._rules import RULES

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def text(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"{f.path}:{f.line}:{f.col}: {f.rule} {f.message}")
        if f.via:
            lines.append(f"    via: {_calls(f.via)}")
        if f.safe_when:
            lines.append(f"    safe when: {f.safe_when} names a shared server")
        lines.append(f"    fix: {f.fix}")
    files = len({f.path for f in findings})
    lines.append(f"{len(findings)} finding(s) in {files} file(s)" if findings else "no findings")
    return "\n".join(lines) + "\n"


def json(findings: list[Finding]) -> str:
    rows = [{"path": f.path, "line": f.line, "col": f.col, "rule": f.rule,
             "name": RULES[f.rule].name, "message": f.message, "fix": f.fix,
             "via": list(f.via), "safe_when": f.safe_when}
            for f in findings]  # fmt: skip
    return orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n"


def sarif(findings: list[Finding], *, version: str) -> str:
    ids = sorted(RULES)
    rules = [
        {
            "id": r.id,
            "name": r.name,
            "shortDescription": {"text": r.summary},
            "help": {"text": r.fix},
            "defaultConfiguration": {"level": "error" if r.id == "RUNG000" else "warning"},
        }
        for r in (RULES[i] for i in ids)
    ]
    results: list[dict[str, Any]] = [
        {
            "ruleId": f.rule,
            "ruleIndex": ids.index(f.rule),
            "level": "error" if f.rule == "RUNG000" else "warning",
            "message": {"text": f"{f.message}. Fix: {f.fix}"},
            "properties": {"via": list(f.via), "safeWhen": f.safe_when},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(f.path)},
                        "region": {"startLine": f.line, "startColumn": f.col},
                    }
                }
            ],
        }
        for f in findings
    ]
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "rung lint",
                        "version": version,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return orjson.dumps(log, option=orjson.OPT_INDENT_2).decode() + "\n"


def _calls(via: tuple[str, ...]) -> str:
    """`view() -> helper()`; a path that starts at import or startup says so."""
    roots = {"<startup>": "import or startup", "<main>": "__main__"}
    return " -> ".join(roots.get(name, f"{name}()") for name in via)


def _uri(path: str) -> str:
    p = Path(path)
    return p.resolve().as_uri() if p.is_absolute() else p.as_posix()
