"""The `rung` console script without the `cli` extra: one line on stderr, exit 2."""

import sys
from collections.abc import Callable
from importlib.metadata import distribution

import pytest

HINT = "rung: the command line needs its extra: pip install 'rung[cli]'"


def _console_script() -> Callable[[], None]:
    """What the installed `rung` command runs, loaded as the console script loads it."""
    [script] = [e for e in distribution("rung").entry_points if e.group == "console_scripts"]
    main: Callable[[], None] = script.load()
    return main


@pytest.mark.parametrize("missing", ["typer", "rich"])
def test_without_the_cli_extra_rung_prints_one_line_and_exits_2(
    missing: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `import rich` (and `from rich.console import ...`, already imported or not) now fail as
    # if rich were not installed.
    for name in [missing, *(n for n in sys.modules if n.startswith(f"{missing}."))]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "rung.cli", raising=False)
    with pytest.raises(SystemExit) as exit:
        _console_script()()
    assert exit.value.code == 2
    assert capsys.readouterr() == ("", HINT + "\n")


def test_a_missing_module_that_is_not_the_extra_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "rung.cli", None)
    with pytest.raises(ModuleNotFoundError, match=r"rung\.cli"):
        _console_script()()
