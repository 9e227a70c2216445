"""What `pip install rung` brings: the rungs' three drivers, and the command line as an extra."""

from importlib.metadata import distribution

from packaging.requirements import Requirement

REQUIRES = [Requirement(r) for r in distribution("rung").requires or []]


def _names(extra: str) -> set[str]:
    """The distributions required when `extra` is asked for ("" is a plain install)."""
    return {r.name for r in REQUIRES if r.marker is None or r.marker.evaluate({"extra": extra})}


def test_a_plain_install_requires_only_asyncpg_orjson_and_redis() -> None:
    """Requires-Dist entries without an `extra ==` marker name exactly the rungs' drivers."""
    assert {"asyncpg", "orjson", "redis"} == _names("")


def test_the_cli_extra_adds_typer_and_rich() -> None:
    assert {"typer", "rich"} == _names("cli") - _names("")


def test_the_console_script_is_the_entry_that_needs_no_extra() -> None:
    [script] = [e for e in distribution("rung").entry_points if e.group == "console_scripts"]
    assert (script.name, script.value) == ("rung", "rung._entry:main")
