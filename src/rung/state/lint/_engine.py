"""`rung lint`'s run: the files, read twice (a scan of the whole tree, `_tree`, then a check
of each module: its `ast` in a `_context.ModuleContext`, which hands each piece to the
rules of `_rules`), and the call graph's verdict over what they found.

    findings = lint_paths([Path("app")])

Names are resolved through the file's imports (`from functools import lru_cache as lc`
is still `functools.lru_cache`). A line ending in `# rung: ignore[RUNG101]` (several ids
separated by commas) drops those findings on that line. A file that cannot be checked (see
`_files.py` for which files are read, and how) is one RUNG000 finding, and the run goes on.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable
from pathlib import Path

from rung.state.lint._context import ModuleContext
from rung.state.lint._files import NotAnalysable, python_files
from rung.state.lint._finding import Finding
from rung.state.lint._tree import (
    _CHUNK,
    _PARALLEL_FROM,
    _Checked,
    _final,
    _pool,
    _read,
    _scan,
    _Tree,
)

_IGNORE = re.compile(r"#\s*rung:\s*ignore\[([A-Za-z0-9_,\s]+)\]")
_NEWLINE = re.compile(r"\r\n|\r|\n")  # Python's line ends (str.splitlines knows more)


def lint_paths(paths: Iterable[Path]) -> list[Finding]:
    """Findings for every .py file under `paths` (files or directories), sorted. FIFOs,
    sockets and devices are skipped unopened."""
    findings: list[Finding] = []

    def unlistable(directory: Path, error: OSError) -> None:
        reason = f"cannot list the directory: {error.strerror or error}"
        findings.append(_not_checked(str(directory), NotAnalysable(reason)))

    files = list(python_files(paths, onerror=unlistable))
    chunks = [files[i : i + _CHUNK] for i in range(0, len(files), _CHUNK)]
    workers = min(os.cpu_count() or 1, 8) if len(files) >= _PARALLEL_FROM else 1
    with _pool(workers) as run:
        # Two passes, each reading the files (the second from the page cache): a scan of
        # what each module defines, then the check of each module with the whole known.
        scans = list(run(_scan, chunks))
        tree = _Tree.joined(scans)
        checked = [result for chunk in run(_check_files, chunks, tree) for result in chunk]
    findings += _final(checked)
    return sorted(findings, key=lambda f: (f.path, f.line, f.col, f.rule))


def lint_source(source: str, path: str) -> list[Finding]:
    """Findings for one module's source. Source that cannot be checked (a syntax error, a
    null byte, nesting deeper than the parser allows) is one RUNG000 finding."""
    return _final([_check(source, path, _Tree({}, frozenset(), {}))])


def _check_files(paths: list[Path], tree: _Tree) -> list[_Checked]:
    checked = []
    for path in paths:
        source = _read(path)
        if isinstance(source, NotAnalysable):
            checked.append(_Checked([_not_checked(str(path), source)]))
        elif source is not None:
            checked.append(_check(source, str(path), tree))
    return checked


def _check(source: str, path: str, tree: _Tree) -> _Checked:
    try:
        module = _parse(source, path)
        checker = ModuleContext(path, tree)
        checker.check(module)
    except NotAnalysable as e:
        return _Checked([_not_checked(path, e)])
    except RecursionError:  # the walk is iterative; this guards whatever still recurses
        return _Checked([_not_checked(path, NotAnalysable("nested too deeply to check"))])
    return _Checked(checker.findings, checker.conditional, checker.calls, _ignores(source),
                    checker.gated, checker.on_globals,
                    {(checker.module, loop) for loop in checker.loops}, checker.starts)  # fmt: skip


def _parse(source: str, path: str) -> ast.Module:
    if "\0" in source:  # 3.11 raises ValueError, 3.12 SyntaxError, neither says where
        line = source.count("\n", 0, source.index("\0")) + 1
        raise NotAnalysable("cannot parse: the file contains a null byte", line=line)
    try:
        return ast.parse(source, filename=path)
    except SyntaxError as e:
        raise NotAnalysable(f"cannot parse: {e.msg}", e.lineno or 1, e.offset or 1) from e
    except ValueError as e:  # compile()'s documented error for some source it rejects
        raise NotAnalysable(f"cannot parse: {e}") from e
    except RecursionError as e:  # ast construction is bounded by the recursion limit
        raise NotAnalysable(f"nested too deeply to parse: {e}") from e
    except MemoryError as e:  # how 3.11's parser reports that its own stack overflowed
        raise NotAnalysable("too complex to parse: the parser ran out of stack") from e


def _not_checked(path: str, problem: NotAnalysable) -> Finding:
    return Finding(path, problem.line, problem.col, "RUNG000", problem.reason)


def _ignores(source: str) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for number, line in enumerate(_NEWLINE.split(source), 1):
        match = _IGNORE.search(line)
        if match:
            out[number] = {part.strip().upper() for part in match.group(1).split(",")}
    return out
