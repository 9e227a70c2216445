"""The checks behind `rung lint`: one pass of the stdlib `ast` per file.

    findings = lint_paths([Path("app")])

Names are resolved through the file's imports (`from functools import lru_cache as lc`
is still `functools.lru_cache`). A line ending in `# rung: ignore[RUNG101]` (several ids
separated by commas) drops those findings on that line. A file that cannot be checked (see
`_files.py` for which files are read, and how) is one RUNG000 finding, and the run goes on.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

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
_MUTATORS = {
    "append", "extend", "insert", "remove", "pop", "popitem", "clear", "update", "setdefault",
    "add", "discard", "appendleft", "extendleft", "popleft", "sort", "reverse",
    "difference_update", "intersection_update", "symmetric_difference_update",
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


def lint_paths(paths: Iterable[Path]) -> list[Finding]:
    """Findings for every .py file under `paths` (files or directories), sorted. FIFOs,
    sockets and devices are skipped unopened."""
    findings: list[Finding] = []

    def unlistable(directory: Path, error: OSError) -> None:
        reason = f"cannot list the directory: {error.strerror or error}"
        findings.append(_not_checked(str(directory), NotAnalysable(reason)))

    for path in python_files(paths, onerror=unlistable):
        findings += lint_file(path)
    return sorted(findings, key=lambda f: (f.path, f.line, f.col, f.rule))


def lint_file(path: Path) -> list[Finding]:
    """Findings for one file; [] for one that is not a regular file."""
    try:
        source = read_source(path)
    except NotAnalysable as e:
        return [_not_checked(str(path), e)]
    return [] if source is None else lint_source(source, str(path))


def lint_source(source: str, path: str) -> list[Finding]:
    """Findings for one module's source. Source that cannot be checked (a syntax error, a
    null byte, nesting deeper than the parser allows) is one RUNG000 finding."""
    try:
        tree = _parse(source, path)
        checker = _Checker(path)
        checker.check(tree)
    except NotAnalysable as e:
        return [_not_checked(path, e)]
    except RecursionError:  # the walk is iterative; this guards whatever still recurses
        return [_not_checked(path, NotAnalysable("nested too deeply to check"))]
    ignored = _ignores(source)
    return [f for f in checker.findings if f.rule not in ignored.get(f.line, ())]


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
    def __init__(self, path: str) -> None:
        self.path = path
        self.findings: list[Finding] = []
        self.imports: dict[str, str] = {}  # local name -> dotted origin
        self.module_state: dict[str, str] = {}  # module-level mutable name -> its kind
        self.loops: set[str] = set()  # module functions that run a periodic loop
        self.startup: set[str] = set()  # functions registered to run at startup

    def check(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.imports[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0]
                    )
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        for stmt in tree.body:
            self._module_statement(stmt)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and self._periodic(node):
                self.loops.add(node.name)
            elif isinstance(node, ast.Call):
                self.startup |= self._startup_hooks(node)
        self._visit(tree)

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
            if isinstance(node, _Function):
                self._function(node)
                function = node
            else:
                if function is not None:
                    self._in_function(node, function)
                if isinstance(node, ast.Call):
                    self._call(node, function)
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
                if _rebinds(fn, name):
                    self._add(node, "RUNG102", f"{fn.name}() rebinds the global '{name}'")
            return
        target: ast.expr | None = None
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            for t in targets:
                if isinstance(t, ast.Subscript):
                    target = t.value
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Attribute) and func.attr in _MUTATORS:
                target = func.value
        if isinstance(target, ast.Name) and target.id in self.module_state:
            name = target.id
            if name in _locals(fn) or _registers(fn):
                return
            if "session" in name.lower():
                self._add(node, "RUNG103", f"sessions kept in the module {self.module_state[name]} "
                          f"'{name}' (changed in {fn.name}())")  # fmt: skip
            else:
                self._add(node, "RUNG101", f"module-level {self.module_state[name]} '{name}' is "
                          f"changed inside {fn.name}()")  # fmt: skip

    def _call(self, call: ast.Call, fn: ast.FunctionDef | ast.AsyncFunctionDef | None) -> None:
        name = self._qualname(call.func)
        last = name.rsplit(".", 1)[-1]
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
        elif fn is not None and _writes_file(call, name, self.imports):
            if not _temporary(call):
                self._add(call, "RUNG201", f"{fn.name}() writes a local file")
        elif (name in _SPAWNERS or last in ("create_task", "ensure_future")) and (
            fn is None or self._at_startup(fn)
        ):
            started = _started_function(call)
            if started in self.loops:
                self._add(call, "RUNG304", f"{started}() loops forever in the background of "
                          "every instance")  # fmt: skip

    # --- helpers --------------------------------------------------------------------------

    def _at_startup(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        """A startup hook: `@app.on_event("startup")`, a lifespan, or a function handed
        to `on_startup=[...]` / `add_event_handler("startup", ...)`."""
        if fn.name in self.startup or "lifespan" in fn.name or "startup" in fn.name:
            return True
        for decorator in fn.decorator_list:
            if (
                isinstance(decorator, ast.Call)
                and self._qualname(decorator.func).endswith("on_event")
                and decorator.args
                and isinstance(decorator.args[0], ast.Constant)
                and decorator.args[0].value == "startup"
            ):
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
        """Does `fn` run a loop that sleeps between rounds?"""
        for node in ast.walk(fn):
            if isinstance(node, ast.While):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Call) and self._qualname(inner.func) in _SLEEPS:
                        return True
        return False

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

    def _add(self, node: ast.AST, rule: str, message: str) -> None:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0) + 1
        self.findings.append(Finding(self.path, line, col, rule, message))


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


def _rebinds(fn: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> bool:
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
            return True
    return False


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
    if call.args:
        first = call.args[0]
        if isinstance(first, ast.Call):
            first = first.func
        if isinstance(first, ast.Name):
            return first.id
        if isinstance(first, ast.Attribute):
            return first.attr
    return None


def _writes_file(call: ast.Call, name: str, imports: dict[str, str]) -> bool:
    """open(..., 'w'), gzip.open(..., 'wb'), path.open('a'), path.write_text(...)."""
    func = call.func
    if name.rsplit(".", 1)[-1] in ("write_text", "write_bytes"):
        return True
    if not (name == "open" or (isinstance(func, ast.Attribute) and func.attr == "open")):
        return False
    method = isinstance(func, ast.Attribute) and not (
        isinstance(func.value, ast.Name) and func.value.id in imports
    )  # path.open(mode) rather than module.open(file, mode)
    position = 0 if method else 1
    mode = call.args[position] if len(call.args) > position else None
    for kw in call.keywords:
        if kw.arg == "mode":
            mode = kw.value
    return (
        isinstance(mode, ast.Constant)
        and isinstance(mode.value, str)
        and any(c in mode.value for c in "wax+")
    )


def _temporary(call: ast.Call) -> bool:
    """A file under tempfile's control, or under /tmp: a brief, single-request scratch file
    (Twelve-Factor allows those)."""
    func = call.func
    subject = (
        func.value if isinstance(func, ast.Attribute) else (call.args[0] if call.args else None)
    )
    if subject is None:
        return False
    for node in ast.walk(subject):
        if isinstance(node, ast.Name) and ("tmp" in node.id.lower() or "temp" in node.id.lower()):
            return True
        if isinstance(node, ast.Attribute) and node.attr in ("gettempdir", "mkdtemp", "mkstemp"):
            return True
        if isinstance(node, ast.Constant) and str(node.value).startswith("/tmp"):
            return True
    return False


def _memory_db(call: ast.Call) -> bool:
    first = call.args[0] if call.args else None
    return isinstance(first, ast.Constant) and first.value in (":memory:", "")


def _mem_url(call: ast.Call) -> bool:
    first = call.args[0] if call.args else None
    return isinstance(first, ast.Constant) and str(first.value).startswith("mem://")
