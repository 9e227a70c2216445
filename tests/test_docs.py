"""The docs show their examples as the files are, and the site's link check stays strict.

A page shows a file inline, since a repository browser renders no include: the fenced block
right after `<!-- example: examples/x.py -->` is the whole file, the one after
`<!-- excerpt: examples/x.py -->` a run of its lines.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
COPY = re.compile(r"^<!-- (example|excerpt): (\S+) -->\n```python\n(.*?)^```$", re.M | re.S)
MARKER = re.compile(r"^<!-- (example|excerpt):", re.M)


def _copies() -> list[tuple[str, str, str, str]]:
    """(page, kind, path, block) for every marked copy in the pages."""
    return [
        (page.relative_to(ROOT).as_posix(), kind, path, block)
        for page in PAGES
        for kind, path, block in COPY.findall(page.read_text())
    ]


@pytest.mark.parametrize(("page", "kind", "path", "block"), _copies())
def test_a_copy_in_the_docs_is_the_file_as_it_is(
    page: str, kind: str, path: str, block: str
) -> None:
    text = (ROOT / path).read_text()
    if kind == "example":
        assert block == text, f"{page}: the copy of {path} differs from the file"
    else:
        assert block and f"\n{block}" in f"\n{text}", f"{page}: the excerpt is not lines of {path}"


def test_every_marker_names_a_python_block_right_below_it() -> None:
    """A marker with a blank line or prose before its block would go unchecked."""
    for page in PAGES:
        text = page.read_text()
        assert len(MARKER.findall(text)) == len(COPY.findall(text)), page


def test_the_pages_copy_every_example_they_used_to_include() -> None:
    """No snippet markers are left (a browser shows the marker, not the code), and the
    copies cover the examples the pages show."""
    assert not [p for p in PAGES if "--8<--" in p.read_text()]
    shown = {(page, path) for page, kind, path, _ in _copies() if kind == "example"}
    assert {
        ("docs/cache.md", "examples/cache_aside.py"),
        ("docs/db.md", "examples/db_in_an_app.py"),
        ("docs/db.md", "examples/read_your_writes.py"),
        ("docs/lab.md", "examples/lab_results.py"),
        ("docs/links.md", "examples/links_tour.py"),
        ("docs/queue.md", "examples/queue_leveller.py"),
        ("docs/stack.md", "examples/stack_tour.py"),
        ("docs/state.md", "examples/sessions_two_instances.py"),
        ("docs/state.md", "examples/singleton_timer.py"),
        ("docs/testing.md", "examples/test_with_rung_stack.py"),
        ("docs/sqlalchemy.md", "examples/sqlalchemy_read_your_writes.py"),
        ("docs/web.md", "examples/web_two_instances.py"),
    } <= shown
    excerpts = {(page, path) for page, kind, path, _ in _copies() if kind == "excerpt"}
    assert excerpts == {
        ("docs/testing.md", "examples/notes_app/conftest.py"),
        ("docs/testing.md", "examples/notes_app/test_app.py"),
    }


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts/mkdocs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_link_out_of_docs_resolves_only_to_an_existing_repository_file() -> None:
    pytest.importorskip("mkdocs")
    repo_file = _hooks().repo_file
    docs = ROOT / "docs"
    cache = ROOT / "examples" / "cache_aside.py"
    assert repo_file(ROOT, docs, "cache.md", "../examples/cache_aside.py") == cache
    assert repo_file(ROOT, docs, "cache.md", "../examples/cache_aside.py#L3") == cache
    assert repo_file(ROOT, docs, "a/b.md", "../../examples/cache_aside.py") == cache
    assert repo_file(ROOT, docs, "cache.md", "../examples/no_such.py") is None
    assert repo_file(ROOT, docs, "cache.md", "../examples") is None  # a folder
    assert repo_file(ROOT, docs, "cache.md", "no_such.md") is None  # inside docs: mkdocs' own
    assert repo_file(ROOT, docs, "cache.md", "../../etc/passwd") is None  # outside the repo


def test_the_filter_passes_every_other_message() -> None:
    pytest.importorskip("mkdocs")
    links = _hooks().RepoLinks(ROOT, ROOT / "docs")

    def passes(msg: str) -> bool:
        return bool(
            links.filter(logging.LogRecord("mkdocs", logging.WARNING, "", 0, msg, None, None))
        )

    found = "but the target is not found among documentation files."
    assert not passes(f"Doc file 'cache.md' contains a link '../examples/cache_aside.py', {found}")
    assert passes(f"Doc file 'cache.md' contains a link '../examples/no_such.py', {found}")
    assert passes("Doc file 'cache.md' contains a link 'db.md#nope', but there is no such anchor")


def test_a_strict_build_fails_on_a_link_to_a_missing_repository_file(tmp_path: Path) -> None:
    """The control and the hazard in one build: the existing file's link passes, the
    missing one's fails --strict, so the hook does not silence broken links."""
    pytest.importorskip("mkdocs")
    (tmp_path / "docs").mkdir()
    (tmp_path / "here.py").write_text("print('here')\n")
    (tmp_path / "docs" / "index.md").write_text("# t\n\n[here](../here.py) [gone](../gone.py)\n")
    (tmp_path / "mkdocs.yml").write_text(
        f"site_name: t\nuse_directory_urls: false\nhooks:\n  - {ROOT / 'scripts/mkdocs_hooks.py'}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(tmp_path / "mkdocs.yml")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert done.returncode == 1, done.stderr
    assert len(warnings) == 1, done.stderr
    assert "'../gone.py'" in warnings[0]
