"""The `rung` console script: the command line when the `cli` extra is installed, else one
line saying how to get it (typer and rich are not dependencies of `pip install rung`).

    [project.scripts] rung = "rung._entry:main"
"""

from __future__ import annotations

import sys

HINT = "rung: the command line needs its extra: pip install 'rung[cli]'"
_CLI_DEPENDENCIES = frozenset({"typer", "rich", "click"})  # click: typer's own dependency


def main() -> None:
    """Run `rung.cli.main`; without its extra, print `HINT` to stderr and exit 2."""
    try:
        from rung.cli import main as cli_main
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] not in _CLI_DEPENDENCIES:
            raise  # a missing module of rung's own is a bug, not a missing extra
        print(HINT, file=sys.stderr)
        sys.exit(2)
    cli_main()
