"""The checks behind `rung lint`: one pass of the stdlib `ast` per file.

    findings = lint_paths([Path("app")])

Names are resolved through the file's imports (`from functools import lru_cache as lc`
is still `functools.lru_cache`). A line ending in `# rung: ignore[RUNG101]` (several ids
separated by commas) drops those findings on that line. A file that cannot be checked (see
`_files.py` for which files are read, and how) is one RUNG000 finding, and the run goes on.
"""

from __future__ import annotations

import ast
import multiprocessing
import os
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from rung.state.lint._files import NotAnalysable, python_files, read_source
from rung.state.lint._rules import RULES


@dataclass(frozen=True, slots=True)
class Finding:
    path: str
    line: int
    col: int  # 1-based
    rule: str
    message: str

    @property
    def fix(self) -> str:
        return RULES[self.rule].fix


_IGNORE = re.compile(r"#\s*rung:\s*ignore\[([A-Za-z0-9_,\s]+)\]")
_NEWLINE = re.compile(r"\r\n|\r|\n")  # Python's line ends (str.splitlines knows more)
_Function: TypeAlias = ast.FunctionDef | ast.AsyncFunctionDef

_CONTAINER_CALLS = {
    "dict", "list", "set", "bytearray", "collections.defaultdict", "collections.OrderedDict",
    "collections.Counter", "collections.deque", "collections.ChainMap",
}  # fmt: skip
# Calls that put something into a container: where per-process state is made. Removals
# (pop, discard, del, clear) are not reported: they undo what an addition, reported there,
# made.
_MUTATORS = {
    "append", "extend", "insert", "update", "setdefault", "add", "appendleft", "extendleft",
    "sort", "reverse", "difference_update", "intersection_update", "symmetric_difference_update",
}  # fmt: skip
_FUNCTOOLS_CACHES = {"functools.lru_cache", "functools.cache"}
_CACHE_DECORATORS = _FUNCTOOLS_CACHES | {
    "cachetools.cached", "cachetools.func.ttl_cache", "cachetools.func.lru_cache",
    "async_lru.alru_cache", "alru_cache",
}  # fmt: skip
_CACHE_CLASSES = {
    "cachetools.TTLCache", "cachetools.LRUCache", "cachetools.LFUCache", "cachetools.Cache",
    "cachetools.TLRUCache", "cachetools.FIFOCache", "expiringdict.ExpiringDict",
    "aiocache.SimpleMemoryCache", "aiocache.Cache",
}  # fmt: skip
_SESSION_STORES = ("InMemoryBackend", "InMemoryStore", "MemoryStore", "InMemorySessionStore")
_DISK_STORES = {
    "shelve.open", "dbm.open", "diskcache.Cache", "diskcache.FanoutCache", "diskcache.Index",
    "diskcache.Deque", "joblib.Memory", "pickle.dump", "marshal.dump",
}  # fmt: skip
_SCHEDULERS = (
    "BackgroundScheduler", "AsyncIOScheduler", "BlockingScheduler", "GeventScheduler",
    "TornadoScheduler", "TwistedScheduler", "QtScheduler", "AsyncScheduler", "Scheduler",
)  # fmt: skip
_ROUTE_DECORATORS = {"get", "post", "put", "patch", "delete", "route", "api_route", "websocket"}
_IO_CALLS = {"execute", "fetch", "fetchrow", "fetchval", "fetchall", "fetchone", "query",
             "urlopen", "request", "read_text", "read_bytes"}  # fmt: skip
_SPAWNERS = {"asyncio.create_task", "asyncio.ensure_future", "create_task", "ensure_future",
             "threading.Thread", "start_soon"}  # fmt: skip
_SLEEPS = {"asyncio.sleep", "time.sleep", "anyio.sleep", "trio.sleep"}
_LISTENS = {"subscribe", "psubscribe", "get_message", "xread", "xreadgroup", "add_listener"}
_CONNECTORS = ("client", "connect", "engine", "pool")
_SCHEDULE_METHODS = {"cyclic", "minutely", "hourly", "daily", "weekly"}  # scheduler's
_STARTUP_DECORATORS = {
    "before_serving", "before_first_request", "on_startup", "before_server_start",
    "after_server_start", "main_process_start",
}  # fmt: skip
_APP_CLASSES = {"Flask", "Quart", "FastAPI", "Starlette", "Sanic", "Application", "Litestar"}
# Calls whose result names a file no other call gets: tempfile's own, and unique names.
_TEMPFILES = {"mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryDirectory", "TemporaryFile",
              "SpooledTemporaryFile"}  # fmt: skip
_UNIQUE_NAMES = {"uuid1", "uuid4", "token_hex", "token_urlsafe"}
_MOVES = {"os.replace", "os.rename", "shutil.move", "shutil.copy", "shutil.copyfile",
          "shutil.copy2"}  # fmt: skip
_UPLOAD_TYPES = {"FileStorage", "UploadFile", "UploadedFile"}
# Settings whose value picks a backend in this process or on its disk: (rule, what it does).
_LOCAL_BACKENDS = {
    "django.db.backends.sqlite3": ("RUNG202", "the SQLite database is a file on this "
                                   "instance's disk"),
    "django.core.cache.backends.locmem.LocMemCache": ("RUNG104", "the cache is in this "
                                                      "process's memory"),
    "django.core.cache.backends.filebased.FileBasedCache": ("RUNG202", "the cache is files on "
                                                            "this instance's disk"),
    "huey.SqliteHuey": ("RUNG202", "the task queue is a SQLite file on this instance's disk"),
}  # fmt: skip
_LOCAL_SUFFIXES = {
    "FileSystemStorage": ("RUNG202", "uploaded files stay on this instance's disk"),
    "WhooshEngine": ("RUNG202", "the search index is a directory on this instance's disk"),
}
_ENV_READS = {"os.environ.get", "os.getenv", "environ.get", "getenv"}
_SECRET_MAKERS = {"secrets.token_hex", "secrets.token_urlsafe", "secrets.token_bytes",
                  "os.urandom", "get_random_secret_key", "generate_key"}  # fmt: skip
_SECRET_NAME = re.compile(r"secret|(^|_)key$|(^|_)keys$", re.IGNORECASE)
# Flask-Caching's CACHE_TYPE values that keep the cache in the process / on its disk.
_CACHE_TYPES = {"simple": "RUNG106", "SimpleCache": "RUNG106", "null": None,
                "filesystem": "RUNG202", "FileSystemCache": "RUNG202"}  # fmt: skip


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
        tree = _Tree(
            {key: kind for scan in scans for key, kind in scan.containers.items()},
            frozenset().union(*(scan.long_lived for scan in scans)),
        )
        checked = [result for chunk in run(_check_files, chunks, tree) for result in chunk]
    findings += _final(checked)
    return sorted(findings, key=lambda f: (f.path, f.line, f.col, f.rule))


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
    r"^[A-Za-z_]\w*[ \t]*(?::[^=\n]+)?=[ \t]*(?:[A-Za-z_]\w*\.)*([A-Z]\w*)\(", re.MULTILINE
)


@dataclass(frozen=True, slots=True)
class _Tree:
    """What the scan of the linted tree found (see `_CONTAINER_LINE`)."""

    containers: dict[tuple[str, str], str]  # (module's last name, variable) -> its kind
    long_lived: frozenset[str]  # classes with a module-level instance


def _scan(paths: list[Path]) -> _Tree:
    containers: dict[tuple[str, str], str] = {}
    long_lived: set[str] = set()
    for path in paths:
        source = _read(path)
        if not isinstance(source, str):
            continue  # reported by the check
        module = path.parent.name if path.stem == "__init__" else path.stem
        for match in _CONTAINER_LINE.finditer(source):
            opener = match.group(2)
            kind = {"{": "dict", "[": "list"}.get(opener, opener.rstrip("(").rsplit(".")[-1])
            containers[(module, match.group(1))] = kind
        long_lived.update(m.group(1) for m in _INSTANCE_LINE.finditer(source))
    return _Tree(containers, frozenset(long_lived))


def lint_source(source: str, path: str) -> list[Finding]:
    """Findings for one module's source. Source that cannot be checked (a syntax error, a
    null byte, nesting deeper than the parser allows) is one RUNG000 finding."""
    return _final([_check(source, path, _Tree({}, frozenset()))])


_STARTUP, _MAIN = "<startup>", "<main>"  # call sites at import or startup; under __main__
_AT_START, _IN_MAIN = frozenset({_STARTUP, _MAIN}), frozenset({_MAIN})
Graph = dict[str, set[str]]  # a function's name -> its callers' names (or _STARTUP, _MAIN)


@dataclass(slots=True)
class _Checked:
    """One module's findings, before the tree's call graph is known. A `conditional`
    finding lies in a function, and is dropped when every path of calls to that function
    in the tree starts at one of its `allowed` roots: a state change made only at import
    or startup (a registry, filled alike on every instance), a timer started only under
    `if __name__ == "__main__":` (a process of its own). `calls`: this module's part of the
    graph, by bare names (a test's calls do not count)."""

    findings: list[Finding]
    conditional: list[tuple[Finding, str, frozenset[str]]] = field(default_factory=list)
    calls: Graph = field(default_factory=dict)
    ignored: dict[int, set[str]] = field(default_factory=dict)

    def final(self, graph: Graph, reached: dict[frozenset[str], set[str]]) -> list[Finding]:
        """The findings that stand, given the tree's `graph` and what it `reached` from
        roots outside each allowed set (`_reached`)."""
        kept = self.findings + [
            f for f, function, allowed in self.conditional
            if function not in graph or function in reached[allowed]
        ]  # fmt: skip
        return [f for f in kept if f.rule not in self.ignored.get(f.line, ())]


def _reached(graph: Graph, allowed: frozenset[str]) -> set[str]:
    """The functions some path of calls reaches from a root outside `allowed`: a function
    nothing in the tree calls (a route handler, called by the framework), or a root the
    set leaves out."""
    forward: dict[str, set[str]] = {}
    for callee, callers in graph.items():
        for caller in callers:
            forward.setdefault(caller, set()).add(callee)
    # A root: nothing calls it, or it calls its own name (recursion, or a handler `load()`
    # that calls `model.load()`: bare names cannot tell, so it counts as a root).
    pending = [
        caller for caller, callees in forward.items()
        if caller not in allowed and (caller not in graph or caller in callees)
    ]  # fmt: skip
    reached = set(pending)
    while pending:
        for callee in forward.get(pending.pop(), ()):
            if callee not in reached:
                reached.add(callee)
                pending.append(callee)
    return reached


def _final(checked: list[_Checked]) -> list[Finding]:
    """The findings of the checked modules, with the tree's call graph known."""
    graph: Graph = {}
    for result in checked:
        for name, callers in result.calls.items():
            graph.setdefault(name, set()).update(callers)
    reached = {allowed: _reached(graph, allowed) for allowed in (_AT_START, _IN_MAIN)}
    return [f for result in checked for f in result.final(graph, reached)]


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
        checker = _Checker(path, tree)
        checker.check(module)
    except NotAnalysable as e:
        return _Checked([_not_checked(path, e)])
    except RecursionError:  # the walk is iterative; this guards whatever still recurses
        return _Checked([_not_checked(path, NotAnalysable("nested too deeply to check"))])
    return _Checked(checker.findings, checker.conditional, checker.calls, _ignores(source))


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


class _Checker:
    def __init__(self, path: str, tree: _Tree) -> None:
        self.path = path
        self.shared = tree.containers
        self.long_lived = tree.long_lived
        self.owners: dict[int, dict[str, str]] = {}  # id() of a method -> its shared attributes
        self.conditional: list[tuple[Finding, str, frozenset[str]]] = []  # see _Checked
        self.calls: Graph = {}  # see _Checked
        self.main: set[int] = set()  # id() of the nodes under `if __name__ == "__main__":`
        self.function: _Function | None = None  # the function the walk is in
        self.any_global = False  # does the module declare a global anywhere?
        self.starting: dict[int, bool] = {}  # id() of a function -> _at_startup(it)
        name = Path(path).name  # a test module's calls do not count (see _Checked)
        self.testing = name.startswith("test_") or name.endswith("_test.py") or name in (
            "conftest.py", "tests.py")  # fmt: skip
        self.modules: dict[str, str] = {}  # a name bound to a module of the tree -> its last name
        self.findings: list[Finding] = []
        self.imports: dict[str, str] = {}  # local name -> dotted origin
        self.module_state: dict[str, str] = {}  # module-level mutable name -> its kind
        self.loops: set[str] = set()  # module functions that run a periodic loop
        self.startup: set[str] = set()  # functions registered to run at startup
        self.overridden: dict[int, str] = {}  # id() of a default -> the variable that overrides it
        self.keys: set[int] = set()  # id() of strings that name, test or build, not set
        self.facts: dict[tuple[int, Callable[[_Function], set[str]]], set[str]] = {}

    def check(self, tree: ast.Module) -> None:
        nodes = list(ast.walk(tree))
        self.any_global = any(isinstance(node, ast.Global) for node in nodes)
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.imports[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0]
                    )
            elif isinstance(node, ast.ImportFrom):
                self._import_from(node)
        for stmt in tree.body:
            self._module_statement(stmt)
        for node in nodes:
            if isinstance(node, ast.ClassDef):
                self._class(node)
        for stmt in tree.body:
            if isinstance(stmt, ast.If) and _is_main_guard(stmt.test):
                self.main.update(id(n) for part in stmt.body for n in ast.walk(part))
        defined = {node.name: node for node in nodes if isinstance(node, _Function)}
        loops = [node.lineno for node in nodes if isinstance(node, ast.While)]
        for node in nodes:
            if (
                isinstance(node, _Function)
                and any(node.lineno <= line <= (node.end_lineno or line) for line in loops)
                and self._periodic(node)
            ):
                if not _listens(node, defined):
                    self.loops.add(node.name)
            elif isinstance(node, ast.Call):
                self.startup |= self._startup_hooks(node)
        self._visit(tree)

    def _import_from(self, node: ast.ImportFrom) -> None:
        """`from pkg.state import cache` (a container of the tree: module state here too),
        `from pkg import state` / `from . import state` (a module of the tree)."""
        source = (node.module or "").rsplit(".", 1)[-1]
        for alias in node.names:
            local = alias.asname or alias.name
            if node.module and not node.level:
                self.imports[local] = f"{node.module}.{alias.name}"
            kind = self.shared.get((source, alias.name))
            if kind is not None:
                self.module_state[local] = kind
            elif any(module == alias.name for module, _ in self.shared):
                self.modules[local] = alias.name

    # --- what the module defines --------------------------------------------------------------

    def _module_statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            return
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if not names:
            return
        kind = self._container_kind(value)
        if kind is None:
            return
        if kind == "cache":
            self._add(stmt, "RUNG104", f"'{names[0]}' is a cache object in process memory")
            return
        for name in names:
            self.module_state[name] = kind

    def _class(self, cls: ast.ClassDef) -> None:
        """The container attributes a method of `cls` may not change: class attributes
        (shared by every instance in the process) that no method rebinds on `self`, and,
        when the tree has a module-level instance of `cls`, the containers its methods put
        on `self`."""
        if any(_is_name(base, "type") for base in cls.bases):
            return  # a metaclass: what it keeps is per class, filled as classes are made
        methods = [m for m in cls.body if isinstance(m, _Function)]
        on_self: dict[str, str | None] = {}  # attribute -> its kind when a container
        for method in methods:
            for node in ast.walk(method):
                if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        if isinstance(t, ast.Attribute) and _is_name(t.value, "self"):
                            kind = self._container_kind(node.value)
                            on_self[t.attr] = on_self.get(t.attr) or kind
        shared: dict[str, str] = {}
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                kind = self._container_kind(stmt.value)
                for t in targets:
                    if kind and kind != "cache" and isinstance(t, ast.Name) and t.id not in on_self:
                        shared[t.id] = f"class attribute {cls.name}.{t.id} ({kind})"
        if cls.name in self.long_lived:
            for attr, held in on_self.items():
                if held and held != "cache":
                    shared[attr] = f"{held} {attr} of the module-level {cls.name}"
        if shared:
            for method in methods:
                if method.name != "__init__":
                    self.owners[id(method)] = shared

    def _container_kind(self, value: ast.expr) -> str | None:
        if isinstance(value, ast.Dict | ast.DictComp):
            return "dict"
        if isinstance(value, ast.List | ast.ListComp):
            return "list"
        if isinstance(value, ast.Set | ast.SetComp):
            return "set"
        if isinstance(value, ast.Call):
            name = self._qualname(value.func)
            if name in _CONTAINER_CALLS:
                return name.rsplit(".", 1)[-1]
            if name in _CACHE_CLASSES:
                return "cache"
        return None

    # --- the walk -----------------------------------------------------------------------------

    def _visit(self, tree: ast.Module) -> None:
        """Every node in source order, with the function it is in (None at module level).
        An explicit stack, not recursion: the parser builds trees about three times deeper
        than Python's recursion limit."""
        pending: list[tuple[ast.AST, _Function | None]] = [(tree, None)]
        while pending:
            node, function = pending.pop()
            self.function = function
            if isinstance(node, _Function):
                self._function(node)
                function = node
            else:
                if function is not None:
                    self._in_function(node, function)
                if isinstance(node, ast.Call):
                    self._call(node, function)
                elif isinstance(node, ast.BoolOp):
                    self._defaults(node)
                elif isinstance(node, ast.Dict):  # a key names a setting, a value sets it
                    self.keys.update(id(k) for k in node.keys if k is not None)
                    for key, value in zip(node.keys, node.values, strict=True):
                        if isinstance(key, ast.Constant):
                            self._assigned(str(key.value), value, function)
                elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        declared = self._declared(function)
                        self._assigned(_target_name(target, function, declared), node.value,
                                       function)  # fmt: skip
                elif isinstance(node, ast.Compare):  # `engine == "...sqlite3"` tests it
                    self.keys.update(map(id, ast.walk(node)))
                elif isinstance(node, ast.Constant | ast.JoinedStr) and id(node) not in self.keys:
                    self._setting(node)
                    if isinstance(node, ast.JoinedStr):
                        self.keys.update(map(id, node.values))
            children = list(ast.iter_child_nodes(node))
            pending.extend((child, function) for child in reversed(children))

    def _function(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in fn.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            name = self._qualname(target)
            if name in _CACHE_DECORATORS and self._request_path(fn):
                self._add(decorator, "RUNG104",
                          f"{name} on {fn.name}() caches per process")  # fmt: skip
            elif name.endswith("repeat_every"):
                self._add(decorator, "RUNG303", f"@repeat_every runs {fn.name}() in every instance")

    def _request_path(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        """Is this cached function on a request path rather than a pure helper? An async
        function, a route handler, or one with arguments that does I/O."""
        if isinstance(fn, ast.AsyncFunctionDef):
            return True
        for decorator in fn.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if isinstance(target, ast.Attribute) and target.attr in _ROUTE_DECORATORS:
                return True
        if not (fn.args.args or fn.args.kwonlyargs or fn.args.posonlyargs):
            return False  # a zero-argument cache is a lazy singleton (settings, a client)
        for node in ast.walk(fn):
            if isinstance(node, ast.Call):
                name = self._qualname(node.func)
                if name.rsplit(".", 1)[-1] in _IO_CALLS or name.split(".")[0] in (
                    "requests", "httpx", "urllib", "open",
                ):  # fmt: skip
                    return True
        return False

    def _in_function(self, node: ast.AST, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if isinstance(node, ast.Global):
            for name in node.names:
                for rebound in _rebindings(fn, name):  # reported where rebound
                    self._state(rebound, fn, "RUNG102", f"{fn.name}() rebinds the global '{name}'")
            return
        target: ast.expr | None = None
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Subscript):
                    target = t.value
                elif _on_app(t):  # app.state.hits = ..., at request time
                    self._state(node, fn, "RUNG101", f"{ast.unparse(t)} is set inside {fn.name}()")
                    return
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Attribute) and func.attr in _MUTATORS:
                target = func.value
        while isinstance(target, ast.Subscript):  # cache[user][key] = ...
            target = target.value
        if target is None or self._harmless(node, fn):
            return
        if _on_app(target):  # request.app["clients"].append(ws), app.state.cache[k] = v
            self._state(node, fn, "RUNG101", f"{ast.unparse(target)} is changed inside {fn.name}()")
            return
        owned = self.owners.get(id(fn), {})
        if (
            isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
            and target.value.id in ("self", "cls") and target.attr in owned
        ):  # fmt: skip
            self._state(
                node, fn, "RUNG101", f"the {owned[target.attr]} is changed inside {fn.name}()"
            )
            return
        if (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id in self.modules
        ):  # state.cache[...] = ..., where `state` is a module of the tree
            kind = self.shared.get((self.modules[target.value.id], target.attr))
            if kind is not None and not _registers(fn):
                self._state(node, fn, "RUNG101", f"module-level {kind} '{target.value.id}."
                          f"{target.attr}' is changed inside {fn.name}()")  # fmt: skip
            return
        if isinstance(target, ast.Name) and target.id in self.module_state:
            name = target.id
            if name in _locals(fn) or _registers(fn):
                return
            if "session" in name.lower():
                self._add(node, "RUNG103", f"sessions kept in the module {self.module_state[name]} "
                          f"'{name}' (changed in {fn.name}())")  # fmt: skip
            else:
                kind = self.module_state[name]
                changed = f"module-level {kind} '{name}' is changed inside {fn.name}()"
                self._state(node, fn, "RUNG101", changed)

    def _written_file(self, call: ast.Call, name: str, fn: _Function) -> ast.expr | None:
        """The expression that names the file `call` writes, or None when it writes none:
        `open(path, "w")` / `path.open("a")` / `os.fdopen(fd, "w")` / `ZipFile(path, "w")`
        (a mode held in a variable of the function counts), `path.write_text(...)`,
        `os.replace(tmp, path)` / `shutil.move(src, path)`, and `x.save(path)` of an upload
        or to a path (`file_path`, `os.path.join(...)`, an f-string)."""
        func = call.func
        last = name.rsplit(".", 1)[-1]
        if last in ("write_text", "write_bytes") and isinstance(func, ast.Attribute):
            return func.value
        if name in _MOVES:
            return call.args[1] if len(call.args) > 1 else None
        if last == "save":
            return self._saved_to(call, fn)
        if name in ("os.fdopen", "zipfile.ZipFile") or name == "open":
            subject, position = (call.args[0] if call.args else None), 1
        elif isinstance(func, ast.Attribute) and func.attr == "open":
            module = isinstance(func.value, ast.Name) and func.value.id in self.imports
            # module.open(file, mode) (gzip, tarfile) or path.open(mode)
            subject = (call.args[0] if call.args else None) if module else func.value
            position = 1 if module else 0
        else:
            return None
        mode = call.args[position] if len(call.args) > position else None
        for kw in call.keywords:
            if kw.arg == "mode":
                mode = kw.value
        modes = [mode] if isinstance(mode, ast.Constant) else []
        if isinstance(mode, ast.Name):  # open(path, mode) with mode = "wb" above
            modes = [
                node.value for node in ast.walk(fn)
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                and any(_is_name(t, mode.id) for t in node.targets)
            ]  # fmt: skip
        writes = any(isinstance(m.value, str) and any(c in m.value for c in "wax+") for m in modes)
        return subject if writes else None

    def _saved_to(self, call: ast.Call, fn: _Function) -> ast.expr | None:
        """`upload.save(path)` (werkzeug's `request.files[...]`, a name bound from it, a
        parameter annotated as an upload) or `doc.save(file_path)`: the path."""
        func = call.func
        if not (isinstance(func, ast.Attribute) and call.args):  # not form.save(commit=False)
            return None
        receiver, target = func.value, call.args[0]
        if isinstance(receiver, ast.Name) and receiver.id in self._facts(fn, _upload_names):
            return target
        if _from_request_files(receiver) or _names_a_path(target):
            return target
        return None

    def _facts(self, fn: _Function, find: Callable[[_Function], set[str]]) -> set[str]:
        """`find(fn)`, worked out once per function (a call asks for each of its calls)."""
        key = (id(fn), find)
        if key not in self.facts:
            self.facts[key] = find(fn)
        return self.facts[key]

    def _setting(self, node: ast.Constant | ast.JoinedStr) -> None:
        """A string that picks a local backend: a SQLite URL, Django's sqlite3 engine or
        LocMem cache, FileSystemStorage, a Whoosh index, SqliteHuey. Where it is the
        default of an environment variable, the finding names that variable."""
        if isinstance(node, ast.JoinedStr):  # f"sqlite:///{path}"
            head = node.values[0] if node.values else None
            if not (isinstance(head, ast.Constant) and _sqlite_file_url(str(head.value) + "/")):
                return
            value = str(head.value) + "..."
        elif isinstance(node.value, str):
            value = node.value
        else:
            return
        found = _LOCAL_BACKENDS.get(value)
        if found is None:
            suffix = value.rsplit(".", 1)[-1]
            found = _LOCAL_SUFFIXES.get(suffix) if "." in value else None
        if found is None and _sqlite_file_url(value):
            found = ("RUNG202", "a SQLite URL: the database is a file on this instance's disk")
        elif found is None and value in ("sqlite://", "sqlite:///:memory:"):
            found = ("RUNG106", "an in-memory SQLite URL: each process has its own database")
        if found is None:
            return
        rule, what = found
        setting = self.overridden.get(id(node))
        if setting is not None:
            what += f" (config-dependent: safe when {setting} names a shared server)"
        self._add(node, rule, f"{value!r}: {what}")

    def _assigned(self, name: str, value: ast.expr, fn: _Function | None) -> None:
        """`name = value` (a variable, an attribute, a dict key, a keyword): a secret made
        here (RUNG105), or a cache type that keeps the cache local."""
        if not name:
            return
        if name == "CACHE_TYPE" and isinstance(value, ast.Constant):
            rule = _CACHE_TYPES.get(str(value.value))
            if rule is not None:
                where = "process's memory" if rule == "RUNG106" else "instance's disk"
                self._add(
                    value, rule, f"CACHE_TYPE {value.value!r} keeps the cache in this {where}"
                )
            return
        if not _SECRET_NAME.search(name):
            return
        for inner in ast.walk(value):
            if isinstance(inner, ast.Call) and self._makes_secret(inner):
                self._add(inner, "RUNG105", f"{name} is generated in this process only")
                return

    def _makes_secret(self, call: ast.Call) -> bool:
        name = self._qualname(call.func)
        return name in _SECRET_MAKERS or name.endswith(("get_random_secret_key",
                                                        "Fernet.generate_key"))  # fmt: skip

    def _backend(self, call: ast.Call, name: str) -> None:
        """A rate limiter, or a Socket.IO server, that keeps its state in this process."""
        given = {k.arg: k.value for k in call.keywords if k.arg}
        if name.startswith(("flask_limiter", "slowapi")) and name.endswith("Limiter"):
            storage = given.get("storage_uri")
            if storage is None:
                self._add(call, "RUNG106", "a rate limiter with no storage_uri counts in "
                          "process memory (config-dependent: safe when RATELIMIT_STORAGE_URI "
                          "names Redis)")  # fmt: skip
            elif isinstance(storage, ast.Constant) and str(storage.value).startswith("memory"):
                self._add(call, "RUNG106", "a rate limiter on memory:// counts per process")
        elif name.startswith("quart_rate_limiter") and "store" not in given:
            self._add(call, "RUNG106", "RateLimiter with no store counts in process memory")
        elif name in ("socketio.AsyncServer", "socketio.Server") and "client_manager" not in given:
            self._add(call, "RUNG106", f"{name}() with no client_manager broadcasts to this "
                      "instance's clients only")  # fmt: skip
        elif name == "flask_socketio.SocketIO" and "message_queue" not in given:
            self._add(call, "RUNG106", "SocketIO() with no message_queue broadcasts to this "
                      "instance's clients only")  # fmt: skip

    def _defaults(self, node: ast.BoolOp) -> None:
        """`os.getenv("DB_ENGINE") or "django.db.backends.sqlite3"`: a default."""
        first = node.values[0]
        if isinstance(node.op, ast.Or) and isinstance(first, ast.Call):
            setting = self._env_read(first)
            if setting is not None:
                for value in node.values[1:]:
                    self.overridden[id(value)] = setting

    def _env_read(self, call: ast.Call) -> str | None:
        """`os.environ.get("X", ...)` / `os.getenv("X")`: "X"."""
        first = call.args[0] if call.args else None
        if self._qualname(call.func) in _ENV_READS and isinstance(first, ast.Constant):
            return str(first.value)
        return None

    def _call(self, call: ast.Call, fn: ast.FunctionDef | ast.AsyncFunctionDef | None) -> None:
        name = self._qualname(call.func)
        last = name.rsplit(".", 1)[-1]
        if not self.testing and not (fn is not None and fn.name.startswith("test")):
            if fn is None:
                caller = _MAIN if id(call) in self.main else _STARTUP
            else:
                caller = _STARTUP if self._at_startup(fn) else fn.name
            self.calls.setdefault(_called_name(call), set()).add(caller)
        setting = self._env_read(call)
        if setting is not None:
            for default in [*call.args[1:2], *(k.value for k in call.keywords)]:
                self.overridden[id(default)] = setting
        self._backend(call, name)
        for keyword in call.keywords:  # AuthKeys(api_key=secrets.token_hex(16))
            if keyword.arg and (fn is None or self._declared(fn)):
                self._assigned(keyword.arg, keyword.value, fn)
        if name == "threading.Timer":
            self._add(call, "RUNG301", "threading.Timer schedules work in this process only")
        elif name == "sched.scheduler":
            self._add(call, "RUNG302", "sched.scheduler schedules work in this process only")
        elif last in _SCHEDULERS and name.startswith("apscheduler"):
            self._add(call, "RUNG303", f"{last} runs its jobs in every instance")
        elif name == "schedule.every":
            self._add(call, "RUNG303", "schedule.every() runs its jobs in every instance")
        elif last in _SESSION_STORES:
            self._add(call, "RUNG103", f"{last}() keeps sessions in process memory")
        elif last == "setup" and _mem_url(call):
            self._add(call, "RUNG104", "an in-memory (mem://) cache backend is per process")
        elif name in _DISK_STORES:
            self._add(call, "RUNG202", f"{name}() keeps data on the local disk")
        elif name == "sqlite3.connect" and not _memory_db(call):
            self._add(call, "RUNG202", "sqlite3.connect() to a file keeps data on the local disk")
        elif fn is not None and (written := self._written_file(call, name, fn)) is not None:
            if not _made_unique(written, self._facts(fn, _scratch_names)):
                self._add(call, "RUNG201", f"{fn.name}() writes a local file ({last})")
        elif (name in _SPAWNERS or last in ("create_task", "ensure_future")) and (
            fn is None or self._at_startup(fn)
        ):
            started = _started_function(call)
            if started in self.loops:
                at = _start_of(call, fn) if fn is not None else call
                self._add(at, "RUNG304", f"{started}() loops forever in the background of "
                          "every instance")  # fmt: skip
        elif last in _SCHEDULE_METHODS and "schedul" in name.lower():
            self._add(call, "RUNG303", f"{name}() runs its job in every instance")

    # --- helpers --------------------------------------------------------------------------

    def _at_startup(self, fn: _Function) -> bool:
        """`_starts(fn)`, worked out once per function."""
        key = id(fn)
        if key not in self.starting:
            self.starting[key] = self._starts(fn)
        return self.starting[key]

    def _starts(self, fn: _Function) -> bool:
        """A startup hook: `@app.on_event("startup")`, Sanic's
        `@app.listener("before_server_start")`, Quart's `@app.before_serving`, Flask's
        `@app.before_first_request`, a lifespan, a function handed to `on_startup=[...]` /
        `add_event_handler("startup", ...)`, Django's `AppConfig.ready`, the `__init__` or
        a `start...` method of an object (long-lived when it starts a loop), or an app
        factory (`create_app`, `..._app`, a function that builds the app)."""
        name = fn.name
        if name in self.startup or "lifespan" in name or "start" in name:
            return True
        if name in ("__init__", "ready", "create_app", "make_app", "app_factory", "init_app"):
            return True
        if name.endswith("_app") or self._facts(fn, _app_builders):
            return True
        for decorator in fn.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            hook = self._qualname(target).rsplit(".", 1)[-1]
            if hook in _STARTUP_DECORATORS:
                return True
            if isinstance(decorator, ast.Call) and hook in ("on_event", "listener"):
                event = decorator.args[0] if decorator.args else None
                if isinstance(event, ast.Constant) and "start" in str(event.value):
                    return True
        return False

    def _qualname(self, node: ast.expr) -> str:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Call):  # Path(...).write_text -> '().write_text'
            return "()." + ".".join(reversed(parts))
        if not isinstance(node, ast.Name):
            return ".".join(reversed(parts))
        head = self.imports.get(node.id, node.id)
        return ".".join([head, *reversed(parts)])

    def _periodic(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        """Does `fn` run a loop paced between rounds: by a sleep, or by waiting on an event
        with a timeout (`stop.wait(60)`, `asyncio.wait_for(stop.wait(), 60)`)?"""
        for node in ast.walk(fn):
            if isinstance(node, ast.While):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Call) and self._paces(inner):
                        return True
        return False

    def _paces(self, call: ast.Call) -> bool:
        name = self._qualname(call.func)
        last = name.rsplit(".", 1)[-1]
        timed = any(k.arg == "timeout" for k in call.keywords)
        return (
            name in _SLEEPS
            or (last == "wait" and (bool(call.args) or timed))
            or (last == "wait_for" and (len(call.args) > 1 or timed))
        )

    def _startup_hooks(self, call: ast.Call) -> set[str]:
        """Functions a call registers for startup: `Starlette(on_startup=[warm])`,
        `app.add_event_handler("startup", warm)`."""
        names: set[str] = set()
        for kw in call.keywords:
            if kw.arg == "on_startup" and isinstance(kw.value, ast.List | ast.Tuple):
                names |= {e.id for e in kw.value.elts if isinstance(e, ast.Name)}
        args = call.args
        if (
            self._qualname(call.func).endswith("add_event_handler")
            and len(args) == 2
            and isinstance(args[0], ast.Constant)
            and args[0].value == "startup"
            and isinstance(args[1], ast.Name)
        ):
            names.add(args[1].id)
        return names

    def _harmless(self, node: ast.AST, fn: _Function) -> bool:
        """A change that keeps no state instances must share: a per-process handle to a
        shared server (a client, a pool), or `tasks.add(task)`, a strong reference to this
        process's own task."""
        if isinstance(node, ast.Assign):
            return _connects(node.value)
        return isinstance(node, ast.Expr) and _keeps_task(node.value, self._facts(fn, _task_names))

    def _declared(self, fn: _Function | None) -> set[str]:
        """The globals `fn` declares (none: most modules have no `global` at all)."""
        return self._facts(fn, _globals) if fn is not None and self.any_global else set()

    def _state(self, node: ast.AST, fn: _Function, rule: str, message: str) -> None:
        """A state change in `fn`: a finding unless `fn` runs at startup (a registry filled
        once, alike on every instance) or is only called there (see _Checked)."""
        if self._at_startup(fn):
            return
        self._add(node, rule, message)
        self.conditional.append((self.findings.pop(), fn.name, _AT_START))

    def _add(self, node: ast.AST, rule: str, message: str) -> None:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0) + 1
        finding = Finding(self.path, line, col, rule, message)
        if not rule.startswith("RUNG3"):
            self.findings.append(finding)
        elif self.function is not None:  # a timer: not when only a script's main starts it
            self.conditional.append((finding, self.function.name, _IN_MAIN))
        elif id(node) not in self.main:
            self.findings.append(finding)


def _locals(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names local to `fn`: its parameters and what it binds (unless declared global)."""
    args = fn.args
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    declared: set[str] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Global | ast.Nonlocal):
            declared.update(node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names - declared


def _rebindings(fn: _Function, name: str) -> list[ast.Name]:
    """Where `fn` rebinds the global `name`, except lazy initialisation: a rebinding under
    `if name is None:` (or `== None`, `not name`), or in a function that returns `name`
    early when it is set (`if name is not None: return name`). That memoizes what every
    instance derives alike (a manifest, a parsed file, a client), not state they share."""
    lazy: set[int] = set()
    for node in ast.walk(fn):
        if not isinstance(node, ast.If):
            continue
        tests = list(ast.walk(node.test))
        if any(_is_unset(test, name) for test in tests):
            lazy.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
        elif any(_is_set(test, name) for test in tests) and isinstance(node.body[0], ast.Return):
            return []
    return [
        node for node in ast.walk(fn)
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store)
        and id(node) not in lazy
    ]  # fmt: skip


def _is_unset(test: ast.AST, name: str) -> bool:
    """`name is None`, `name == None`, `not name`."""
    return (
        isinstance(test, ast.Compare) and _is_name(test.left, name)
        and isinstance(test.ops[0], ast.Is | ast.Eq) and _is_none(test.comparators[0])
    ) or (
        isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
        and _is_name(test.operand, name)
    )  # fmt: skip


def _is_set(test: ast.AST, name: str) -> bool:
    """`name is not None`, `name != None`."""
    return (
        isinstance(test, ast.Compare) and _is_name(test.left, name)
        and isinstance(test.ops[0], ast.IsNot | ast.NotEq) and _is_none(test.comparators[0])
    )  # fmt: skip


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _registers(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A decorator that records what it decorates (`REGISTRY.append(f); return f`) runs at
    import time, not per request."""
    params = [a.arg for a in fn.args.args]
    last = fn.body[-1] if fn.body else None
    return (
        bool(params)
        and isinstance(last, ast.Return)
        and isinstance(last.value, ast.Name)
        and last.value.id == params[0]
    )


def _started_function(call: ast.Call) -> str | None:
    """`create_task(loop())` -> 'loop'; `Thread(target=loop)` -> 'loop'."""
    for kw in call.keywords:
        if kw.arg == "target" and isinstance(kw.value, ast.Name):
            return kw.value.id
        if kw.arg == "target" and isinstance(kw.value, ast.Attribute):  # target=self.loop
            return kw.value.attr
    if call.args:
        first = call.args[0]
        if isinstance(first, ast.Call):
            first = first.func
        if isinstance(first, ast.Name):
            return first.id
        if isinstance(first, ast.Attribute):
            return first.attr
    return None


def _made_unique(node: ast.expr, scratch: set[str]) -> bool:
    """Does `node` name a scratch file of this call alone? Judged by how the name was made,
    not by its directory: tempfile's files and directories are (unless put in a `dir=` of
    the app's, the atomic-write idiom), and so are unique names (uuid4, a `secrets` token)
    under the temp directory; `/tmp/cache/<key>.json` is not (another request reads it
    back), nor a fixed name under `gettempdir()`, nor a uuid4 name in `uploads/`."""
    temporary = unique = False
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name) and inner.id in scratch:
            return True
        if isinstance(inner, ast.Call):
            called = _called_name(inner)
            if called in _TEMPFILES and not any(k.arg == "dir" for k in inner.keywords):
                return True
            unique = unique or called in _UNIQUE_NAMES
            temporary = temporary or called == "gettempdir"
        elif isinstance(inner, ast.Constant) and str(inner.value).startswith("/tmp/"):
            temporary = True
    return temporary and unique


def _names_a_path(node: ast.expr) -> bool:
    """`file_path`, `self.path`, `os.path.join(...)`, `Path(...)`, an f-string."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Call):
        return _called_name(node) in ("join", "Path")
    named = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return any(word in named.lower() for word in ("path", "file"))


def _scratch_names(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names `fn` binds to a unique file or directory (`fd, path = mkstemp()`, `with
    TemporaryDirectory() as d`), and names made from those (`p = os.path.join(d, "x")`),
    in source order."""
    names: set[str] = set()
    for node in ast.walk(fn):
        pairs: list[tuple[ast.expr, ast.expr]] = []
        if isinstance(node, ast.Assign):
            pairs = [(t, node.value) for t in node.targets]
        elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
            pairs = [(node.target, node.value)]
        elif isinstance(node, ast.With | ast.AsyncWith):
            pairs = [(i.optional_vars, i.context_expr) for i in node.items if i.optional_vars]
        for target, value in pairs:
            if _made_unique(value, names):
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def _upload_names(fn: _Function) -> set[str]:
    """Names in `fn` that hold an uploaded file: parameters annotated FileStorage /
    UploadFile / UploadedFile, and names bound from `request.files`."""
    uploads = {
        a.arg
        for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
        if a.annotation is not None and _names_upload_type(a.annotation)
    }
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign | ast.For) and _from_request_files(
            node.value if isinstance(node, ast.Assign) else node.iter
        ):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            uploads |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return uploads


def _from_request_files(node: ast.expr) -> bool:
    return any(
        isinstance(inner, ast.Attribute) and inner.attr == "files"
        and isinstance(inner.value, ast.Name) and inner.value.id == "request"
        for inner in ast.walk(node)
    )  # fmt: skip


def _names_upload_type(annotation: ast.expr) -> bool:
    return any(
        (isinstance(n, ast.Name) and n.id in _UPLOAD_TYPES)
        or (isinstance(n, ast.Attribute) and n.attr in _UPLOAD_TYPES)
        or (isinstance(n, ast.Constant) and str(n.value) in _UPLOAD_TYPES)
        for n in ast.walk(annotation)
    )


def _target_name(target: ast.expr, fn: _Function | None, declared: set[str]) -> str:
    """The name an assignment sets, for judging it: `SECRET_KEY`, `app.secret_key`,
    `app.config["SECRET_KEY"]`. Inside a function, a plain local counts only when it says
    secret (`api_key = token_hex()` there is usually a user's key, bound for the database)
    or is declared global."""
    if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
        return str(target.slice.value)
    if isinstance(target, ast.Attribute):
        return target.attr if fn is None or target.attr == "secret_key" else ""
    if isinstance(target, ast.Name):
        if fn is None or "secret" in target.id.lower() or target.id == "CACHE_TYPE":
            return target.id
        return target.id if target.id in declared else ""
    return ""


def _listens(fn: _Function, defined: dict[str, _Function]) -> bool:
    """Does the loop of `fn`, or a function of this module it calls, subscribe to a shared
    server (pub/sub, a stream)? Every instance needs its own listener: not a timer."""
    called = {_called_name(node) for node in ast.walk(fn) if isinstance(node, ast.Call)}
    bodies = [fn, *(defined[name] for name in called if name in defined)]
    return any(
        _called_name(node) in _LISTENS
        for body in bodies for node in ast.walk(body) if isinstance(node, ast.Call)
    )  # fmt: skip


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _on_app(node: ast.expr) -> bool:
    """`app.state.x` / `request.app.state.x` (Starlette, FastAPI), or `request.app`, for
    aiohttp's `request.app["key"]`: state of the app object, which each process has its
    own copy of."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
        state = node.value
        return state.attr == "state" and (_is_name(state.value, "app") or _is_app(state.value))
    return _is_app(node)


def _is_app(node: ast.expr) -> bool:
    """`request.app`."""
    return (
        isinstance(node, ast.Attribute) and node.attr == "app" and _is_name(node.value, "request")
    )


def _is_main_guard(test: ast.expr) -> bool:
    """`__name__ == "__main__"`."""
    return (
        isinstance(test, ast.Compare) and _is_name(test.left, "__name__")
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )  # fmt: skip


def _task_names(fn: _Function) -> set[str]:
    """Names `fn` binds to a task it creates (`task = asyncio.create_task(...)`)."""
    return {
        target.id
        for node in ast.walk(fn) if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and _called_name(node.value) in ("create_task", "ensure_future", "start_soon")
        for target in node.targets if isinstance(target, ast.Name)
    }  # fmt: skip


def _keeps_task(call: ast.expr, tasks: set[str]) -> bool:
    return (
        isinstance(call, ast.Call) and _called_name(call) in ("add", "append")
        and len(call.args) == 1 and isinstance(call.args[0], ast.Name)
        and call.args[0].id in tasks
    )  # fmt: skip


def _connects(value: ast.expr) -> bool:
    """`AsyncIOMotorClient(url)`, `self.client(db)[db]`, `create_engine(url)`, a pool."""
    return any(
        isinstance(node, ast.Call)
        and any(word in _called_name(node).lower() for word in _CONNECTORS)
        for node in ast.walk(value)
    )


def _app_builders(fn: _Function) -> set[str]:
    """The web app classes `fn` constructs (an app factory constructs one)."""
    return {
        name for node in ast.walk(fn)
        if isinstance(node, ast.Call) and (name := _called_name(node)) in _APP_CLASSES
    }  # fmt: skip


def _start_of(call: ast.Call, fn: _Function) -> ast.AST:
    """Where a thread or task built by `call` starts: `t = Thread(...)` ... `t.start()`
    is reported at `t.start()`; anything else at `call` itself."""
    target = next(
        (
            node.targets[0] for node in ast.walk(fn)
            if isinstance(node, ast.Assign) and node.value is call and len(node.targets) == 1
        ),
        None,
    )  # fmt: skip
    if target is None:
        return call
    built = ast.unparse(target)
    for node in ast.walk(fn):
        if (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "start" and ast.unparse(node.func.value) == built
        ):  # fmt: skip
            return node
    return call


def _globals(fn: _Function) -> set[str]:
    return {n for node in ast.walk(fn) if isinstance(node, ast.Global) for n in node.names}


def _sqlite_file_url(value: str) -> bool:
    """`sqlite:///app.db`, `sqlite+aiosqlite:///...`, `sqlite:` + a path; not the
    in-memory `sqlite://` or `sqlite:///:memory:`."""
    scheme, colon, rest = value.partition(":")
    if not colon or scheme.split("+")[0] != "sqlite":
        return False
    return rest.startswith("/") and rest not in ("//", "///:memory:")


def _memory_db(call: ast.Call) -> bool:
    first = call.args[0] if call.args else None
    return isinstance(first, ast.Constant) and first.value in (":memory:", "")


def _mem_url(call: ast.Call) -> bool:
    first = call.args[0] if call.args else None
    return isinstance(first, ast.Constant) and str(first.value).startswith("mem://")
