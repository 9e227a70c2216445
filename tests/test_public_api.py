import __future__

import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

import rung


def test_all_lists_every_public_name_sorted() -> None:
    """The façade's __all__ is sorted and names exactly the public attributes."""
    public = sorted(
        name for name in vars(rung) if not name.startswith("_") and not _is_module(name)
    )
    assert sorted(rung.__all__) == rung.__all__
    assert public == rung.__all__


def test_every_error_derives_from_rung_error() -> None:
    """Each exception rung exports is a RungError."""
    errors = [getattr(rung, n) for n in rung.__all__ if isinstance(getattr(rung, n), type)]
    errors = [e for e in errors if issubclass(e, BaseException)]
    assert errors
    assert all(issubclass(e, rung.RungError) for e in errors)


def _is_module(name: str) -> bool:
    return type(getattr(rung, name)).__name__ == "module"


PACKAGES = [
    "rung.cache",
    "rung.db",
    "rung.doctor",
    "rung.lab",
    "rung.queue",
    "rung.sqlalchemy",
    "rung.stack",
    "rung.state",
    "rung.state.lint",
    "rung.web",
]
PUBLIC_MODULES = {"rung.cli", "rung.errors", "rung.testing", "rung.types", *PACKAGES}

# Implementation modules a package also offers under a public name, for their own unit tests
# (`from rung.db import routing`). Each is a deliberate choice: add one here, not by accident.
INTERNALS = {
    "rung": {"aio": "rung._aio", "redis": "rung._redis"},
    "rung.cache": {
        "breaker": "rung.cache._breaker",
        "entry": "rung.cache._entry",
        "flights": "rung.cache._flights",
        "lease_client": "rung.cache._lease_client",
        "leases": "rung.cache._leases",
    },
    "rung.db": {
        "lsn": "rung.db._lsn",
        "node": "rung.db._node",
        "routing": "rung.db._routing",
        "waiters": "rung.db._waiters",
    },
    "rung.doctor": {
        "app": "rung.doctor._app",
        "model": "rung.doctor._model",
        "plans": "rung.doctor._plans",
        "verdicts": "rung.doctor._verdict",
    },
    "rung.lab": {
        "boxes": "rung.lab._boxes",
        "claims": "rung.lab._claims",
        "load": "rung.lab._load",
        "report": "rung.lab._report",
        "stages": "rung.lab._stages",
        "workload": "rung.lab._workload",
    },
    "rung.queue": {
        "faults": "rung.queue._faults",
        "ids": "rung.queue._ids",
        "pacing": "rung.queue._pacing",
    },
    "rung.sqlalchemy": {"routing": "rung.sqlalchemy._routing"},
    "rung.stack": {
        "binaries": "rung.stack._binaries",
        "component": "rung.stack._component",
        "haproxy": "rung.stack._haproxy",
        "ports": "rung.stack._ports",
        "proc": "rung.stack._proc",
        "service": "rung.stack._service",
        "supervisor": "rung.stack._supervisor",
    },
    "rung.state": {},
    "rung.state.lint": {},
    "rung.web": {"tokens": "rung.web._tokens"},
}


def _public(package: ModuleType) -> tuple[list[str], dict[str, str]]:
    """A package's public names that are not modules, and the modules it offers by a public
    name other than its own public subpackages (name -> the module's real name)."""
    names, modules = [], {}
    for name, value in vars(package).items():
        if name.startswith("_") or not name.isidentifier():  # pytest's `@py_builtins`
            continue
        if isinstance(value, __future__._Feature):  # `from __future__ import annotations`
            continue
        if isinstance(value, ModuleType):
            if (
                value.__name__.startswith("rung.")
                and value.__name__ != f"{package.__name__}.{name}"
            ):
                modules[name] = value.__name__
        else:
            names.append(name)
    return sorted(names), modules


def _isort_style(name: str) -> tuple[int, str]:
    """The order ruff (RUF022) keeps __all__ in: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def _package(name: str) -> ModuleType:
    """The package `name`; skipped where it needs an extra that is not installed (rung.web,
    rung.lab: scripts/check-install runs this file with rung alone)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] in ("rung", "rung_links"):
            raise
        pytest.skip(f"{name} needs {e.name}, an extra's dependency")


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_lists_every_public_name_sorted(name: str) -> None:
    """A public package's __all__ is sorted (as ruff sorts it) and names exactly its public
    attributes that are not modules, as rung's own does."""
    package = _package(name)
    assert sorted(package.__all__, key=_isort_style) == package.__all__
    assert _public(package)[0] == sorted(package.__all__)


@pytest.mark.parametrize("name", ["rung", *PACKAGES])
def test_each_package_offers_only_the_internal_modules_it_means_to(name: str) -> None:
    assert _public(_package(name))[1] == INTERNALS[name]


def test_every_implementation_module_is_private() -> None:
    """Below `rung`, a module that is not one of the public ones is `_name`."""
    found = {m.name for m in pkgutil.walk_packages(rung.__path__, "rung.")}
    public = {m for m in found if not any(p.startswith("_") for p in m.split(".")[1:])}
    assert public == PUBLIC_MODULES


ROOT = Path(__file__).resolve().parent.parent
PRIVATE_IMPORT = re.compile(
    r"^\s*(?:import\s+rung(?:\.\w+)*\._\w*"  # import rung._x, import rung.pkg._x
    r"|from\s+rung(?:\.\w+)*\._\w*"  # from rung._x import ..., from rung.pkg._x import ...
    r"|from\s+rung(?:\.\w+)*\s+import\s+\(?[^#\n]*\b_\w+)",  # from rung.pkg import _x
    re.MULTILINE,
)


def test_no_test_example_or_bench_imports_a_private_rung_name() -> None:
    """Tests, examples and benchmarks use what a user can: rung, its public packages and
    rung.testing, never a `_name` below rung."""
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0).strip()}"
        for folder in ("tests", "examples", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for match in PRIVATE_IMPORT.finditer(path.read_text())
    ]
    assert offenders == []


def test_the_private_import_check_finds_each_form() -> None:
    """The control: each way of reaching a private name is caught, public ones are not."""
    caught = [
        "import rung._aio",
        "from rung._redis import Store",
        "from rung.db._lsn import Token",
        "from rung.db import _lsn as lsn",
        "from rung.stack import Stack, _proc",
        "    from rung.web._tokens import sign",
    ]
    passed = ["import rung", "from rung.db import lsn", "from rung.stack import Stack, proc",
              "from rung_links.app import create_app", "import rung.web"]  # fmt: skip
    assert [bool(PRIVATE_IMPORT.search(line)) for line in caught] == [True] * len(caught)
    assert [bool(PRIVATE_IMPORT.search(line)) for line in passed] == [False] * len(passed)
