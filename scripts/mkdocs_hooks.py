"""mkdocs hooks (mkdocs.yml `hooks:`): the pages' links to the repository's own files.

docs/*.md link to `../examples/cache_aside.py`, `../README.md`: right in a repository
browser, and right in the built site too, since `site/` sits beside `docs/` in the checkout
and `use_directory_urls: false` keeps each page at its source's depth. mkdocs can only check
links to files inside docs_dir, and reports every other one as "not found", with no setting
for links that leave it. This hook checks those itself: a link to a file that exists in the
repository is not reported; one to a file that does not exist still is, as a warning that
fails `mkdocs build --strict`. Any other message passes through untouched.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mkdocs.config.defaults import MkDocsConfig

# mkdocs 1.6's words (mkdocs/structure/pages.py). Should they change, nothing matches and
# every such link is reported again: the build fails loudly rather than passing silently.
NOT_FOUND = re.compile(
    r"^Doc file '(?P<doc>[^']+)' contains a link '(?P<url>[^']+)', but the target"
)


def repo_file(root: Path, docs_dir: Path, doc: str, url: str) -> Path | None:
    """The file of the repository at `root` that `url`, in docs_dir's page `doc`, names, when
    it lies outside docs_dir and exists; else None.

        repo_file(root, root / "docs", "cache.md", "../examples/cache_aside.py")
    """
    path = unquote(urlsplit(url).path)
    if not path or path.startswith("/"):
        return None
    target = Path(
        posixpath.normpath(posixpath.join(docs_dir.as_posix(), posixpath.dirname(doc), path))
    )
    outside_docs = not target.is_relative_to(docs_dir)
    return target if outside_docs and target.is_relative_to(root) and target.is_file() else None


class RepoLinks(logging.Filter):
    """Drops mkdocs' "not found" warning for a link to an existing file of the repository."""

    def __init__(self, root: Path, docs_dir: Path) -> None:
        super().__init__()
        self.root, self.docs_dir = root, docs_dir

    def filter(self, record: logging.LogRecord) -> bool:
        found = NOT_FOUND.match(record.getMessage())
        if found is None:
            return True
        return repo_file(self.root, self.docs_dir, found["doc"], found["url"]) is None


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    pages = logging.getLogger("mkdocs.structure.pages")
    # `mkdocs serve` reloads this module on each rebuild: a new class, so match the name.
    for old in [f for f in pages.filters if type(f).__name__ == RepoLinks.__name__]:
        pages.removeFilter(old)
    root = Path(config.config_file_path).resolve().parent
    pages.addFilter(RepoLinks(root, Path(config.docs_dir).resolve()))
    return config
