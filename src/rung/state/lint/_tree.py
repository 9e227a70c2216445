"""The linted tree as a whole: what a scan of every module finds before any is checked
(`_Tree`), each module's findings until the tree's call graph is known (`_Checked`), the
graph's verdict (`_final`), and the worker processes a big tree is checked on (`_pool`).
"""

from __future__ import annotations

import bisect
import multiprocessing
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rung.state.lint._files import NotAnalysable, read_source
from rung.state.lint._finding import Finding

_PARALLEL_FROM = 400  # files: below this, starting worker processes costs more than it saves
_CHUNK = 64  # files per task sent to a worker


@contextmanager
def _pool(workers: int) -> Iterator[Callable[..., Iterator[Any]]]:
    """`map` on `workers` processes (forked, so nothing is imported again), or in this
    one. Modules are scanned and checked apart; only `_final` joins them."""
    if workers < 2:
        yield lambda fn, chunks, *shared: (fn(chunk, *shared) for chunk in chunks)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        yield lambda fn, chunks, *shared: pool.map(fn, chunks, *([x] * len(chunks) for x in shared))


def _read(path: Path) -> str | NotAnalysable | None:
    try:
        return read_source(path)
    except NotAnalysable as e:
        return e


# A module-level mutable container, as a line of source: `NAME = {}`, `NAME: dict[...] = {}`,
# `NAME = defaultdict(list)`; and a module-level instance, `NAME = ClassName(...)`. Found by a
# scan of every module before any is checked, so that a module that imports a container and
# changes it is reported, and so is a method that changes a container attribute of an object
# that lives as long as the process, without parsing twice.
_CONTAINER_LINE = re.compile(
    r"^([A-Za-z_]\w*)[ \t]*(?::[^=\n]+)?=[ \t]*(\{|\[|(?:set|dict|list|(?:collections\.)?"
    r"(?:defaultdict|OrderedDict|Counter|deque))\()",
    re.MULTILINE,
)
_INSTANCE_LINE = re.compile(
    r"^([ \t]*)(self\.)?([A-Za-z_]\w*)[ \t]*(?::[^=\n]+)?=[ \t]*(?:[A-Za-z_]\w*\.)*([A-Z]\w*)\(",
    re.MULTILINE,
)
# A container a method keeps on self: `self.listeners = []`, `self.jobs: dict = {}`.
_SELF_CONTAINER_LINE = re.compile(
    r"^[ \t]+self\.([A-Za-z_]\w*)[ \t]*(?::[^=\n]+)?=[ \t]*(?:\{|\[|(?:set|dict|list|"
    r"(?:collections\.)?(?:defaultdict|OrderedDict|Counter|deque))\()",
    re.MULTILINE,
)
# An instance kept on a class (a singleton: `Controller._instance = Controller()`,
# `cls._instance = cls()`) or on the app (`app.events = EventManager()`, `app["hub"] =
# Hub()`, `app.state.hub = Hub()`) lives as long as the process.
_KEPT_LINE = re.compile(
    r"^[ \t]+(?:(?:[A-Z]\w*|cls)\.\w+|(?:self\.)?app(?:\.state)?\.\w+|app\[[^\]\n]+\])"
    r"[ \t]*=[ \t]*(?:[A-Za-z_]\w*\.)*([A-Z]\w*|cls)\(",
    re.MULTILINE,
)
# A function's `global NAME`: an instance it binds to NAME lives as long as the process too.
_GLOBAL_LINE = re.compile(r"^[ \t]+global[ \t]+([\w, \t]+?)[ \t]*$", re.MULTILINE)
_CLASS_LINE = re.compile(r"^class[ \t]+(\w+)(?:[ \t]*\(([^)]*)\))?", re.MULTILINE)
# A container in a class body (`    registry: dict[str, Plugin] = {}`): one per process,
# shared by every instance of the class and of its subclasses.
_CLASS_CONTAINER_LINE = re.compile(
    r"^[ \t]+([A-Za-z_]\w*)[ \t]*(?::[^=\n]+)?=[ \t]*(\{|\[|(?:set|dict|list|(?:collections\.)?"
    r"(?:defaultdict|OrderedDict|Counter|deque))\()",
    re.MULTILINE,
)
# A function that starts a task or a thread: `def spawn(fn): return create_task(fn())`.
_DEF_LINE = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)", re.MULTILINE)
_SPAWN_CALL = re.compile(r"\b(?:create_task|ensure_future|Thread)\(")
_CACHES_LINE = re.compile(r"^[ \t]*CACHES[ \t]*(?::[^=\n]+)?=", re.MULTILINE)
# A context manager that yields a path and removes it after (`try: yield path` / `finally:
# path.unlink()`): what it yields is scratch.
_CONTEXT_MANAGER = re.compile(
    r"^([ \t]*)@(?:contextlib\.)?(?:async)?contextmanager[ \t]*\n(?:\1@.*\n)*"
    r"\1(?:async[ \t]+)?def[ \t]+(\w+)",
    re.MULTILINE,
)
_REMOVES = re.compile(r"\b(?:unlink|remove|rmtree|cleanup)\(")
_LOCMEM = re.compile(r"locmem\.LocMemCache")
# A test module, or the settings of tests or CI (`settings/ci.py`, `configs/testing.py`):
# what it sets and calls is not deployed.
TEST_FILE = re.compile(r"^(test_.*|.*_test\.py|conftest\.py|tests?\.py|testing\.py|ci\.py)$")
# A value chosen only in debug: `"...LocMemCache" if DEBUG else ...`, or under `if DEBUG:`.
_IF_DEBUG_AFTER = re.compile(r"""["'][ \t]*\n?[ \t]*if[ \t]+(?:[\w.]+\.)?DEBUG\b""")
_IF_DEBUG_LINE = re.compile(r"^[ \t]*(?:el)?if[ \t]+(?:[\w.]+\.)?DEBUG[ \t]*:")


@dataclass(frozen=True, slots=True)
class _Tree:
    """What the scan of the linted tree found (see `_CONTAINER_LINE`)."""

    containers: dict[tuple[str, str], str]  # (module's last name, variable) -> its kind
    long_lived: frozenset[str]  # classes with a module-level instance
    held: dict[str, frozenset[str]]  # class -> the classes it makes and keeps on self
    # Django's cache is in each process: a settings module picks LocMemCache, or a project
    # with settings (INSTALLED_APPS) sets no CACHES at all, whose default is LocMemCache.
    django_cache_local: bool = False
    django_settings: bool = False
    django_caches: bool = False
    spawners: frozenset[str] = frozenset()  # functions of the tree that start a task or thread
    scratch_makers: frozenset[str] = frozenset()  # context managers that remove what they yield
    # class -> its container class attributes, with those of the classes it derives from
    class_containers: dict[str, dict[str, str]] = field(default_factory=dict)
    bases: dict[str, frozenset[str]] = field(default_factory=dict)  # class -> its bases' names
    # (module's last name, variable) -> the class of the tree a module-level instance is of
    instances: dict[tuple[str, str], str] = field(default_factory=dict)
    defined: frozenset[str] = frozenset()  # the tree's classes
    # class -> the containers its methods keep on self (`self.listeners = []`)
    instance_containers: dict[str, frozenset[str]] = field(default_factory=dict)

    @staticmethod
    def joined(parts: list[_Tree]) -> _Tree:
        """One tree of the scans of its parts. A class whose instance a long-lived object
        keeps on `self` (a queue inside a module-level manager) is long-lived too."""
        held: dict[str, set[str]] = {}
        for part in parts:
            for owner, classes in part.held.items():
                held.setdefault(owner, set()).update(classes)
        long_lived = set(_closure(held, set().union(*(part.long_lived for part in parts))))
        containers = {key: kind for part in parts for key, kind in part.containers.items()}
        settings = any(part.django_settings for part in parts)
        caches = any(part.django_caches for part in parts)
        local = any(part.django_cache_local for part in parts) or (settings and not caches)
        spawners = frozenset().union(*(part.spawners for part in parts))
        makers = frozenset().union(*(part.scratch_makers for part in parts))
        own: dict[str, dict[str, str]] = {}
        bases: dict[str, set[str]] = {}
        for part in parts:
            for cls, attributes in part.class_containers.items():
                own.setdefault(cls, {}).update(attributes)
            for cls, names in part.bases.items():
                bases.setdefault(cls, set()).update(names)
        inherited = {  # what a class has of its own and of the classes it derives from
            cls: {a: k for up in _closure(bases, {cls}) for a, k in own.get(up, {}).items()}
            for cls in own.keys() | bases.keys()
        }
        defined = frozenset().union(*(part.defined for part in parts))
        instances = {
            key: cls for part in parts for key, cls in part.instances.items() if cls in defined
        }
        kept_by: dict[str, set[str]] = {}
        for part in parts:
            for cls, on_self in part.instance_containers.items():
                kept_by.setdefault(cls, set()).update(on_self)
        return _Tree(containers, frozenset(long_lived), {}, django_cache_local=local,
                     spawners=spawners, scratch_makers=makers,
                     class_containers={c: a for c, a in inherited.items() if a},
                     instances=instances,
                     instance_containers={c: frozenset(a) for c, a in kept_by.items()})  # fmt: skip


def _scan(paths: list[Path]) -> _Tree:
    containers: dict[tuple[str, str], str] = {}
    long_lived: set[str] = set()
    held: dict[str, set[str]] = {}
    local = settings = caches = False
    spawners: set[str] = set()
    makers: set[str] = set()
    class_containers: dict[str, dict[str, str]] = {}
    bases: dict[str, frozenset[str]] = {}
    instances: dict[tuple[str, str], str] = {}
    defined: set[str] = set()
    kept: dict[str, set[str]] = {}
    for path in paths:
        source = _read(path)
        if not isinstance(source, str):
            continue  # reported by the check
        module = path.parent.name if path.stem == "__init__" else path.stem
        for match in _CONTAINER_LINE.finditer(source):
            containers[(module, match.group(1))] = _kind(match.group(2))
        declared = {
            name.strip() for m in _GLOBAL_LINE.finditer(source) for name in m.group(1).split(",")
        }
        classes = _starts_of(_CLASS_LINE, source)
        defined.update(classes[1])
        for m in _INSTANCE_LINE.finditer(source):
            indent, on_self, name, made = m.groups()
            if on_self:  # kept by the object of the class whose body this line is in
                owner = _enclosing(classes, m.start())
                if owner is not None:
                    held.setdefault(owner, set()).add(made)
            elif not indent or name in declared:
                long_lived.add(made)
                if not indent:
                    instances[(module, name)] = made
        for m in _KEPT_LINE.finditer(source):
            made = m.group(1) if m.group(1) != "cls" else _enclosing(classes, m.start())
            if made is not None:
                long_lived.add(made)
        defs = _starts_of(_DEF_LINE, source)
        for m in _CLASS_LINE.finditer(source):
            if m.group(2):
                bases[m.group(1)] = frozenset(
                    b.strip().rsplit(".", 1)[-1] for b in m.group(2).split(",") if "=" not in b
                )
        for m in _SELF_CONTAINER_LINE.finditer(source):
            owner = _enclosing(classes, m.start())
            if owner is not None:
                kept.setdefault(owner, set()).add(m.group(1))
        for m in _CLASS_CONTAINER_LINE.finditer(source):
            owner = _enclosing(classes, m.start())
            if owner is not None and _last_start(classes, m.start()) > _last_start(defs, m.start()):
                kind = _kind(m.group(2))
                class_containers.setdefault(owner, {})[m.group(1)] = (
                    f"class attribute {owner}.{m.group(1)} ({kind})"
                )
        makers.update(m.group(2) for m in _CONTEXT_MANAGER.finditer(source) if _removes(source, m))
        for m in _SPAWN_CALL.finditer(source):
            spawner = _enclosing(defs, m.start())
            if spawner is not None:
                spawners.add(spawner)
        if not TEST_FILE.match(path.name):  # a test's settings are not deployed
            local = local or any(
                not _debug_only(source, m.start()) for m in _LOCMEM.finditer(source)
            )
            settings = settings or "INSTALLED_APPS" in source
            caches = caches or _CACHES_LINE.search(source) is not None
    held_by = {k: frozenset(v) for k, v in held.items()}
    return _Tree(containers, frozenset(long_lived), held_by, local, settings, caches,
                 frozenset(spawners), frozenset(makers), class_containers, bases, instances,
                 frozenset(defined),
                 {c: frozenset(a) for c, a in kept.items()})  # fmt: skip


def _removes(source: str, match: re.Match[str]) -> bool:
    """Does the context manager `match` found remove, after its `yield`, what it made?
    Its body: the lines after the `def` more indented than it (at most 100)."""
    indent = len(match.group(1))
    body: list[str] = []
    for line in source[match.end() :].split("\n", 101)[1:101]:
        stripped = line.lstrip()
        if stripped and len(line) - len(stripped) <= indent and stripped[0] not in ")]}":
            break
        body.append(line)
    text = "\n".join(body)
    at = text.find("yield")
    return at >= 0 and _REMOVES.search(text, at) is not None


def _debug_only(source: str, at: int) -> bool:
    """Is the string at offset `at` a value chosen only in debug (`_IF_DEBUG_AFTER`), or in
    the body of an `if DEBUG:`? Found by the lines above it that are less indented."""
    end = source.find("\n", at)
    quote = min((i for i in (source.find('"', at), source.find("'", at)) if i >= 0), default=-1)
    if quote >= 0 and _IF_DEBUG_AFTER.match(source, quote):
        return True
    start = source.rfind("\n", 0, at) + 1
    line = source[start : end if end >= 0 else len(source)]
    indent = len(line) - len(line.lstrip())
    for above in reversed(source[:start].splitlines()[-200:]):
        stripped = above.lstrip()
        if not stripped or len(above) - len(stripped) >= indent:
            continue
        indent = len(above) - len(stripped)
        if _IF_DEBUG_LINE.match(above):
            return True
        if indent == 0:
            break
    return False


def _kind(opener: str) -> str:
    """The kind of container a line opens: `{` a dict, `defaultdict(` a defaultdict."""
    return {"{": "dict", "[": "list"}.get(opener, opener.rstrip("(").rsplit(".")[-1])


def _starts_of(pattern: re.Pattern[str], source: str) -> tuple[list[int], list[str]]:
    """Where each match of `pattern` (a `class` or `def` line) starts, and its name."""
    matches = list(pattern.finditer(source))
    return [m.start() for m in matches], [m.group(1) for m in matches]


def _last_start(defined: tuple[list[int], list[str]], at: int) -> int:
    """Where the last definition that starts before offset `at` starts (-1: none)."""
    i = bisect.bisect_left(defined[0], at)
    return defined[0][i - 1] if i else -1


def _enclosing(defined: tuple[list[int], list[str]], at: int) -> str | None:
    """The name of the last definition that starts before offset `at` (`_starts_of`)."""
    i = bisect.bisect_left(defined[0], at)
    return defined[1][i - 1] if i else None


_STARTUP, _MAIN = "<startup>", "<main>"  # call sites at import or startup; under __main__
_REQUEST = "<request>"  # the framework, calling a route handler or a view's get/post/...
_AT_START, _IN_MAIN = frozenset({_STARTUP, _MAIN}), frozenset({_MAIN})
_BY_REQUEST = frozenset({_REQUEST})  # stands only where a request handler reaches it
Graph = dict[str, set[str]]  # a function's name -> its callers' names (or _STARTUP, _MAIN)
Reached = dict[str, str | None]  # a function reached -> its caller on the way (None: a root)


@dataclass(slots=True)
class _Checked:
    """One module's findings, before the tree's call graph is known. A `conditional`
    finding lies in a function, and is dropped when every path of calls to that function
    in the tree starts at one of its `allowed` roots: a state change made only at import
    or startup (a registry, filled alike on every instance), a timer started only under
    `if __name__ == "__main__":` (a process of its own). A `gated` finding lies in a method
    of a class no scan found long-lived: it stands when the tree calls that method on an
    object a module global holds (`controller.register(...)`), at request time
    (`on_globals`). `calls`: this module's part of the graph, by bare names (a test's calls
    do not count)."""

    findings: list[Finding]
    conditional: list[tuple[Finding, str, frozenset[str]]] = field(default_factory=list)
    calls: Graph = field(default_factory=dict)
    ignored: dict[int, set[str]] = field(default_factory=dict)
    gated: list[tuple[Finding, str]] = field(default_factory=list)
    on_globals: set[str] = field(default_factory=set)
    loops: set[tuple[str, str]] = field(default_factory=set)  # (module, function) that loop
    # a loop started through a spawner of the tree, from a helper of startup, or imported
    # from another module: (finding, the loop, the function that starts it, None at
    # startup or import)
    starts: list[tuple[Finding, tuple[str, str], str | None]] = field(default_factory=list)

    def final(
        self, graph: Graph, reached: dict[frozenset[str], Reached], on_globals: set[str],
        loops: set[tuple[str, str]],
    ) -> list[Finding]:  # fmt: skip
        """The findings that stand, given the tree's `graph`, what it `reached` from roots
        outside each allowed set (`_reached`) and the methods it calls on module globals.
        A finding in a function that is not a root carries the path of calls to it."""
        kept = list(self.findings)
        for finding, function, allowed in self.conditional:
            if function not in graph and allowed is not _BY_REQUEST:
                kept.append(finding)
            elif function in reached[allowed]:
                kept.append(replace(finding, via=_path(reached[allowed], function)))
        at_request = reached[_AT_START]
        for finding, method in self.gated:
            if method in on_globals and method in at_request:
                kept.append(replace(finding, via=_path(at_request, method)))
        for finding, loop, starter in self.starts:  # started only at startup: every instance
            if loop in loops and (
                starter is None or (starter in graph and starter not in at_request)
            ):
                kept.append(finding)
        return [f for f in kept if f.rule not in self.ignored.get(f.line, ())]


def _reached(graph: Graph, forward: Graph, allowed: frozenset[str]) -> Reached:
    """The functions some path of calls reaches from a root outside `allowed` (a function
    nothing in the tree calls: a route handler, called by the framework; or a root the set
    leaves out), each with its caller on the first path found (None for a root). `forward`:
    the graph's edges the other way, a caller -> the functions it calls."""
    # A root: nothing calls it, or it calls its own name (recursion, or a handler `load()`
    # that calls `model.load()`: bare names cannot tell, so it counts as a root).
    roots = {
        caller for caller, callees in forward.items()
        if caller not in allowed and (caller not in graph or caller in callees)
    }  # fmt: skip
    return _closure(forward, roots)


def _closure(edges: dict[str, set[str]], start: set[str]) -> dict[str, str | None]:
    """`start` and everything reached from it along `edges`, each with the node it was
    first reached from (None for `start`)."""
    reached: dict[str, str | None] = dict.fromkeys(start)
    pending = deque(sorted(start))  # breadth first: the shortest path to each
    while pending:
        node = pending.popleft()
        for nxt in sorted(edges.get(node, ())):  # the same path on every run
            if nxt not in reached:
                reached[nxt] = node
                pending.append(nxt)
    return reached


def _path(reached: Reached, function: str) -> tuple[str, ...]:
    """The calls from a root to `function` (empty when it is a root itself)."""
    path = [function]
    while (caller := reached.get(path[-1])) is not None and caller not in path:
        path.append(caller)
    return tuple(reversed(path)) if len(path) > 1 else ()


def _final(checked: list[_Checked]) -> list[Finding]:
    """The findings of the checked modules, with the tree's call graph known."""
    graph: Graph = {}
    for result in checked:
        for name, callers in result.calls.items():
            graph.setdefault(name, set()).update(callers)
    forward: Graph = {}
    for callee, callers in graph.items():
        for caller in callers:
            forward.setdefault(caller, set()).add(callee)
    reached = {allowed: _reached(graph, forward, allowed) for allowed in (_AT_START, _IN_MAIN)}
    reached[_BY_REQUEST] = _closure(forward, {_REQUEST})
    on_globals = set().union(*(result.on_globals for result in checked))
    loops = set().union(*(result.loops for result in checked))
    return [f for result in checked for f in result.final(graph, reached, on_globals, loops)]
