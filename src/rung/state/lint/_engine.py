"""The checks behind `rung lint`: the stdlib `ast` of each file, checked with what a scan of
the whole tree found (`_tree`); `_syntax` says what a piece of syntax is.

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
from collections.abc import Callable, Iterable
from pathlib import Path

from rung.state.lint._files import NotAnalysable, python_files
from rung.state.lint._rules import Finding
from rung.state.lint._syntax import (
    _app_builders,
    _called_name,
    _connects,
    _from_request_files,
    _Function,
    _globals,
    _is_main_guard,
    _is_name,
    _items_of,
    _keeps_task,
    _keyed_on_self,
    _listens,
    _locals,
    _made_unique,
    _mem_url,
    _memory_db,
    _names_a_path,
    _on_app,
    _rebindings,
    _registers,
    _scratch_names,
    _sqlite_file_url,
    _start_of,
    _started_function,
    _target_name,
    _task_names,
    _upload_names,
)  # fmt: skip
from rung.state.lint._tree import (
    _AT_START,
    _CHUNK,
    _IN_MAIN,
    _MAIN,
    _PARALLEL_FROM,
    _STARTUP,
    Graph,
    _Checked,
    _final,
    _pool,
    _read,
    _scan,
    _Tree,
)  # fmt: skip

_IGNORE = re.compile(r"#\s*rung:\s*ignore\[([A-Za-z0-9_,\s]+)\]")
_NEWLINE = re.compile(r"\r\n|\r|\n")  # Python's line ends (str.splitlines knows more)

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
_SCHEDULE_METHODS = {"cyclic", "minutely", "hourly", "daily", "weekly"}  # scheduler's
_STARTUP_DECORATORS = {
    "before_serving", "before_first_request", "on_startup", "before_server_start",
    "after_server_start", "main_process_start",
}  # fmt: skip
_MOVES = {"os.replace", "os.rename", "shutil.move", "shutil.copy", "shutil.copyfile",
          "shutil.copy2"}  # fmt: skip
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
        self.items: dict[int, dict[str, str]] = {}  # per function: see _items_of

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
                    shared[attr] = f"{held} {attr} of the long-lived {cls.name}"
            for attr in _keyed_on_self(methods) - shared.keys():  # a mapping of any class
                if attr in on_self and on_self[attr] != "cache":
                    shared[attr] = f"mapping {attr} of the long-lived {cls.name}"
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
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            held = self._items(fn).get(target.value.id)  # terminal = terminals.get(key)
            if held in self.module_state and not _registers(fn):
                of = f"an item of the module-level {self.module_state[held]} '{held}'"
                changed = f"{ast.unparse(target)}, of {of}, is changed inside {fn.name}()"
                self._state(node, fn, "RUNG101", changed)
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

    def _items(self, fn: _Function) -> dict[str, str]:
        """`_items_of(fn)`, worked out once per function."""
        if id(fn) not in self.items:
            self.items[id(fn)] = _items_of(fn)
        return self.items[id(fn)]

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
        self._add(node, rule, f"{value!r}: {what}", safe_when=setting)

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
                          "names Redis)", safe_when="RATELIMIT_STORAGE_URI")  # fmt: skip
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

    def _add(self, node: ast.AST, rule: str, message: str, *, safe_when: str | None = None) -> None:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0) + 1
        finding = Finding(self.path, line, col, rule, message, safe_when=safe_when)
        if not rule.startswith("RUNG3"):
            self.findings.append(finding)
        elif self.function is not None:  # a timer: not when only a script's main starts it
            self.conditional.append((finding, self.function.name, _IN_MAIN))
        elif id(node) not in self.main:
            self.findings.append(finding)
