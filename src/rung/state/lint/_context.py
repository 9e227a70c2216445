"""The shared context every rule of `rung lint` checks a module with (`ModuleContext`): its
imports and qualified names, the state it defines (module containers, class and long-lived
attributes, from the scan of the whole tree), its loops and startup contexts, its part of
the call graph; and the walk that hands each piece of syntax to the rules' hooks (see
`_rules`), with what the context knows of it: a call with its qualified name, a state
change with what it changes, a string, a setting.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

from rung.state.lint._finding import Finding
from rung.state.lint._rules import HOOKS
from rung.state.lint._syntax import (
    _APP_CLASSES,
    _adds_connection,
    _called_name,
    _connects,
    _Function,
    _globals,
    _is_main_guard,
    _is_name,
    _is_route,
    _items_of,
    _keeps_task,
    _keyed_on_self,
    _listens,
    _locals,
    _made_here,
    _names_debug,
    _on_app,
    _read_whole,
    _rebound_on_self,
    _registers,
    _scratch_names,
    _set_lazily,
    _sqlite_file_url,
    _subscribes,
    _target_name,
    _task_names,
)  # fmt: skip
from rung.state.lint._tree import (
    _AT_START,
    _BY_REQUEST,
    _IN_MAIN,
    _MAIN,
    _REQUEST,
    _STARTUP,
    TEST_FILE,
    Graph,
    _Tree,
)  # fmt: skip

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
CACHE_CLASSES = {
    "cachetools.TTLCache", "cachetools.LRUCache", "cachetools.LFUCache", "cachetools.Cache",
    "cachetools.TLRUCache", "cachetools.FIFOCache", "expiringdict.ExpiringDict",
    "aiocache.SimpleMemoryCache", "aiocache.Cache",
}  # fmt: skip
_SLEEPS = {"asyncio.sleep", "time.sleep", "anyio.sleep", "trio.sleep"}
_STARTUP_DECORATORS = {
    "before_serving", "before_first_request", "on_startup", "before_server_start",
    "after_server_start", "main_process_start",
}  # fmt: skip
_ENV_READS = {"os.environ.get", "os.getenv", "environ.get", "getenv"}
# The statements that may change state (or declare a global), checked in a function
_CHANGES = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Global)
# Libraries whose calls reach the network or a database: not pure functions of their input
_REMOTE_LIBRARIES = (
    "requests", "httpx", "urllib", "aiohttp", "socket", "redis", "sqlite3", "psycopg",
    "asyncpg", "pymongo", "boto3", "subprocess", "os", "open",
)  # fmt: skip
_CURRENT_APPS = {"flask.current_app", "quart.current_app"}
_SCRIPTS_OWN = ("RUNG3", "RUNG201")  # what only a script's main does is the script's
_VERBS = {"get", "post", "put", "patch", "delete", "head", "options"}  # a class view's
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Change:
    """A state change in function `fn` at `node`: `what` is changed (or `set`, `verb`);
    `session` names the module container when its name says it keeps sessions."""

    node: ast.AST
    fn: _Function
    what: str
    verb: str = "changed"
    session: str | None = None
    gated: bool = False  # of an object only a module global may hold (see _Checked)
    made_by: str | None = None  # an `__init__` change of a class attribute: the class
    by_request: bool = False  # of the app a request runs in (current_app): only from one


def _walk(tree: ast.Module) -> list[tuple[ast.AST, _Function | None]]:
    """Every node in source order, with the function it is in (None at module level), in
    one pass that the context's scans and the hooks share. An explicit stack, not
    recursion: the parser builds trees about three times deeper than Python's recursion
    limit."""
    pairs: list[tuple[ast.AST, _Function | None]] = []
    pending: list[tuple[ast.AST, _Function | None]] = [(tree, None)]
    while pending:
        node, function = pending.pop()
        pairs.append((node, function))
        inner = node if isinstance(node, _Function) else function
        pending.extend((child, inner) for child in reversed(list(ast.iter_child_nodes(node))))
    return pairs


class ModuleContext:
    """One module, checked with what the scan of its `tree` found (see the module
    docstring). The rules report through `report` and `state`."""

    def __init__(self, path: str, tree: _Tree) -> None:
        self.path = path
        self.shared = tree.containers
        self.long_lived = tree.long_lived
        self.django_cache_local = tree.django_cache_local  # see _Tree
        self.spawners = tree.spawners  # see _Tree
        self.scratch_makers = tree.scratch_makers  # see _Tree
        self.class_containers = tree.class_containers  # see _Tree
        self.instances = tree.instances  # see _Tree
        self.instance_containers = tree.instance_containers  # see _Tree
        self.objects: dict[str, str] = {}  # a name bound to a module-level object of the tree
        # id() of a route handler defined in a function -> that function's containers it
        # shares with the other handlers (name -> what it is)
        self.closures: dict[int, dict[str, str]] = {}
        self.starts: list[tuple[Finding, tuple[str, str], str | None]] = []  # see _Checked
        file = Path(path)
        self.module = file.parent.name if file.stem == "__init__" else file.stem
        self.owners: dict[int, dict[str, str]] = {}  # id() of a method -> its shared attributes
        self.maybe: dict[int, dict[str, str]] = {}  # the same, of classes not known long-lived
        # id() of an `__init__` or a classmethod -> its class, and its class attributes
        self.classes: dict[int, tuple[str, dict[str, str]]] = {}
        self.gated: list[tuple[Finding, str]] = []  # see _Checked
        self.on_globals: set[str] = set()  # methods called on module globals at request time
        self.global_objects: set[str] = set()  # module globals bound to what a call made here
        self.findings: list[Finding] = []
        self.conditional: list[tuple[Finding, str, frozenset[str]]] = []  # see _Checked
        self.calls: Graph = {}  # see _Checked
        self.main: set[int] = set()  # id() of the nodes under `if __name__ == "__main__":`
        self.function: _Function | None = None  # the function the walk is in
        self.any_global = False  # does the module declare a global anywhere?
        self.current_app = False  # does it import Flask's or Quart's current_app?
        self.testing = bool(TEST_FILE.match(Path(path).name))  # its calls do not count
        self.modules: dict[str, str] = {}  # a name bound to a module of the tree -> its last name
        self.imports: dict[str, str] = {}  # local name -> dotted origin
        self.module_state: dict[str, str] = {}  # module-level mutable name -> its kind
        self.loops: set[str] = set()  # module functions that run a periodic loop
        self.startup: set[str] = set()  # functions registered to run at startup
        self.overridden: dict[int, str] = {}  # id() of a default -> the variable that overrides it
        self.keys: set[int] = set()  # id() of strings that name, test or build, not set (or
        # set only in debug)
        self.memo: dict[tuple[int, Callable[[_Function], object]], object] = {}  # see facts
        self.read_whole: set[str] = set()  # containers the module reads whole (_read_whole)
        self.defined: dict[str, _Function] = {}  # the module's functions and methods, by name
        self.inside: dict[int, list[ast.AST]] = {}  # id() of a function -> all its nodes

    # --- what the rules report with ---------------------------------------------------------

    def report(
        self, node: ast.AST, rule: str, message: str, *, safe_when: str | None = None
    ) -> None:
        """A finding at `node`. A timer (RUNG3xx) or a file written (RUNG201) stands unless
        only a script's main starts or writes it (see _Checked)."""
        finding = self._finding(node, rule, message, safe_when)
        if not rule.startswith(_SCRIPTS_OWN):
            self.findings.append(finding)
        elif self.function is not None:
            self.conditional.append((finding, self.function.name, _IN_MAIN))
        elif id(node) not in self.main:
            self.findings.append(finding)

    def state(
        self, node: ast.AST, fn: _Function, rule: str, message: str, *, gated: bool = False,
        made_by: str | None = None, by_request: bool = False,
    ) -> None:  # fmt: skip
        """A state change in `fn`: a finding unless `fn` runs at startup (a registry filled
        once, alike on every instance) or is only called there; `gated`, only if the tree
        calls `fn` on a module global (see _Checked); `made_by`, a class whose `__init__`
        is `fn`: unless that class is only made at startup; `by_request`, only if a request
        handler reaches `fn` (the app of `current_app` is also the app at startup)."""
        if made_by is None and self.at_startup(fn):
            return
        self.report(node, rule, message)
        if _is_route(fn):
            return  # a request handler: the framework calls it
        if by_request:
            self.conditional.append((self.findings.pop(), fn.name, _BY_REQUEST))
        elif gated:
            self.gated.append((self.findings.pop(), fn.name))
        else:
            self.conditional.append((self.findings.pop(), made_by or fn.name, _AT_START))

    def start(
        self, node: ast.AST, rule: str, message: str, loop: tuple[str, str], fn: _Function | None
    ) -> None:
        """A finding that stands when `loop` (module, function) is a periodic loop of the
        tree and `fn` (None: import or startup) is reached only from startup (_Checked)."""
        if fn is None and id(node) in self.main:
            return
        self.starts.append(
            (self._finding(node, rule, message), loop, None if fn is None else fn.name)
        )

    def _finding(
        self, node: ast.AST, rule: str, message: str, safe_when: str | None = None
    ) -> Finding:
        line, col = getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1
        return Finding(self.path, line, col, rule, message, safe_when=safe_when)

    def setting(self, node: ast.AST, rule: str, value: str, what: str) -> None:
        """A string `value` that picks a local backend: where it is the default of an
        environment variable, the finding names that variable."""
        if self.testing:
            return  # a test's settings are not deployed
        variable = self.overridden.get(id(node))
        if variable is not None:
            what += f" (config-dependent: safe when {variable} names a shared server)"
        self.report(node, rule, f"{value!r}: {what}", safe_when=variable)

    def qualname(self, node: ast.expr) -> str:
        """`node`'s dotted name through the module's imports (`lc` of `from functools
        import lru_cache as lc` is `functools.lru_cache`)."""
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

    def facts(self, fn: _Function, find: Callable[[_Function], T]) -> T:
        """`find(fn)`, worked out once per function (a call asks for each of its calls)."""
        key = (id(fn), find)
        if key not in self.memo:
            self.memo[key] = find(fn)
        return cast(T, self.memo[key])

    def at_startup(self, fn: _Function) -> bool:
        """Does `fn` run at startup (`_starts`)? Worked out once per function."""
        return self.facts(fn, self._starts)

    def scratch(self, fn: _Function) -> set[str]:
        """The names `fn` binds to scratch files (`_scratch_names`, the tree's own context
        managers that remove what they yield counted). Worked out once per function."""
        return self.facts(fn, self._scratch)

    def _scratch(self, fn: _Function) -> set[str]:
        return _scratch_names(fn, self.scratch_makers)

    def declared(self, fn: _Function | None) -> set[str]:
        """The globals `fn` declares (none: most modules have no `global` at all)."""
        return self.facts(fn, _globals) if fn is not None and self.any_global else set()

    def env_read(self, call: ast.Call) -> str | None:
        """`os.environ.get("X", ...)` / `os.getenv("X")`: "X"."""
        first = call.args[0] if call.args else None
        if self.qualname(call.func) in _ENV_READS and isinstance(first, ast.Constant):
            return str(first.value)
        return None

    # --- what the module defines ------------------------------------------------------------

    def check(self, tree: ast.Module) -> None:
        pairs = _walk(tree)
        nodes = [node for node, _ in pairs]
        outer: dict[int, _Function | None] = {}
        for node, function in pairs:  # each function's nodes, as ast.walk(function) has them
            if isinstance(node, _Function):
                outer[id(node)] = function
                self.inside.setdefault(id(node), []).append(node)
            while function is not None:
                self.inside.setdefault(id(function), []).append(node)
                function = outer.get(id(function))
        self.any_global = any(isinstance(node, ast.Global) for node in nodes)
        self.read_whole = _read_whole(nodes)
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.imports[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0]
                    )
            elif isinstance(node, ast.ImportFrom):
                self._import_from(node)
        self.current_app = bool(_CURRENT_APPS & set(self.imports.values()))
        for stmt in tree.body:
            self._module_statement(stmt)
        self.global_objects = _made_here(tree, self.imports)
        for (module, name), made in self.instances.items():
            if module == self.module and name in self.global_objects:
                self.objects[name] = made
        for node in nodes:
            if isinstance(node, ast.ClassDef):
                self._class(node)
        for node in nodes:  # a value chosen only in debug is not a deployed setting
            if isinstance(node, ast.IfExp | ast.If) and _names_debug(node.test):
                parts = [node.body] if isinstance(node, ast.IfExp) else node.body
                self.keys.update(id(n) for part in parts for n in ast.walk(part))
        for stmt in tree.body:
            if isinstance(stmt, ast.If) and _is_main_guard(stmt.test):
                self.main.update(id(n) for part in stmt.body for n in ast.walk(part))
        defined = {node.name: node for node in nodes if isinstance(node, _Function)}
        self.defined = defined
        functions = [node for node in nodes if isinstance(node, _Function)]
        if not self.testing:  # what the framework calls is reached from a request
            for fn in functions:
                if _is_route(fn):
                    self.calls.setdefault(fn.name, set()).add(_REQUEST)
            for cls in (node for node in nodes if isinstance(node, ast.ClassDef)):
                for verb in (m.name for m in cls.body if isinstance(m, _Function)):
                    if verb in _VERBS:
                        self.calls.setdefault(verb, set()).add(_REQUEST)
        if any(fn.col_offset and _is_route(fn) for fn in functions):  # routes defined inside
            for fn in functions:
                self._closures(fn)
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
        self._visit(pairs)

    def _import_from(self, node: ast.ImportFrom) -> None:
        """`from pkg.state import cache` (a container of the tree: module state here too),
        `from pkg import state` / `from . import state` (a module of the tree)."""
        source = (node.module or "").rsplit(".", 1)[-1]
        if node.level and not node.module:  # `from . import config`: the package's own
            package = Path(self.path).parents[node.level - 1]
            source = package.name
        for alias in node.names:
            local = alias.asname or alias.name
            if node.module and not node.level:
                self.imports[local] = f"{node.module}.{alias.name}"
            kind = self.shared.get((source, alias.name))
            made = self.instances.get((source, alias.name))
            if made is not None:
                self.objects[local] = made
            if kind is not None:
                self.module_state[local] = kind
            elif any(module == alias.name for module, _ in self.shared):
                self.modules[local] = alias.name

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
            for hook in HOOKS.on_module_cache:
                hook(self, stmt, names[0])
            return
        for name in names:
            self.module_state[name] = kind

    def _class(self, cls: ast.ClassDef) -> None:
        """The container attributes a method of `cls` may not change: class attributes
        (shared by every instance in the process) that no method rebinds on `self`, and,
        when an instance of `cls` lives as long as the process, the containers its methods
        put on `self` and the mappings they store into by key (unless it subscribes to a
        shared bus: then they are this process's own subscribers, fed from it)."""
        if any(_is_name(base, "type") for base in cls.bases):
            return  # a metaclass: what it keeps is per class, filled as classes are made
        methods = [m for m in cls.body if isinstance(m, _Function)]
        walked = [(method, self.inside.get(id(method), [method])) for method in methods]
        on_self: dict[str, str | None] = {}  # attribute -> its kind when a container
        for _, nodes in walked:
            for node in nodes:
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
        for attr, what in self.class_containers.get(cls.name, {}).items():  # of a base class
            if attr not in on_self:
                shared.setdefault(attr, what)
        for method in methods:  # what `__init__` adds to them, each time the class is made
            if method.name == "__init__" or any(
                _is_name(d, "classmethod") for d in method.decorator_list
            ):
                self.classes[id(method)] = (cls.name, dict(shared))
        kept: dict[str, str] = {}  # what an instance keeps, if it lives long
        for attr, held in on_self.items():
            if held and held != "cache":
                kept[attr] = f"{held} {attr}"
        for attr in _keyed_on_self(walked) - kept.keys():  # a mapping of any class
            if attr in on_self and on_self[attr] != "cache":
                kept[attr] = f"mapping {attr}"
        for attr in _rebound_on_self(walked) - kept.keys() - shared.keys():
            kept[attr] = f"attribute {attr}"  # self.last_request_time = now
        every = [node for _, nodes in walked for node in nodes]
        if kept and _subscribes(every):  # what it keeps is fed by a shared bus (pub/sub):
            kept = {}  # each instance listens and fans out to its own subscribers
        if cls.name in self.long_lived:
            shared.update({a: f"{k} of the long-lived {cls.name}" for a, k in kept.items()})
        maybe = {a: f"{k} of {cls.name}, held by a module global," for a, k in kept.items()}
        for method in methods:
            if method.name != "__init__":
                if shared:
                    self.owners[id(method)] = shared
                if maybe and cls.name not in self.long_lived:
                    self.maybe[id(method)] = maybe

    def _closures(self, outer: _Function) -> None:
        """The containers `outer` makes that the route handlers it defines change: they
        live as long as the app the handlers are routes of (`sessions = {}` in a blueprint
        factory, `@bp.post("/login")` storing into it)."""
        made: dict[str, str] = {}
        handlers: list[_Function] = []
        pending: list[ast.AST] = list(outer.body)
        while pending:
            node = pending.pop()
            if isinstance(node, _Function):
                if _is_route(node):
                    handlers.append(node)
                continue
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                kind = self._container_kind(node.value)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if kind and kind != "cache" and isinstance(t, ast.Name):
                        made[t.id] = f"{kind} '{t.id}' of {outer.name}(), which its routes share"
            pending.extend(ast.iter_child_nodes(node))
        for handler in handlers:
            shared = {n: what for n, what in made.items() if n not in self.facts(handler, _locals)}
            if shared:
                self.closures[id(handler)] = shared

    def _container_kind(self, value: ast.expr) -> str | None:
        if isinstance(value, ast.Dict | ast.DictComp):
            return "dict"
        if isinstance(value, ast.List | ast.ListComp):
            return "list"
        if isinstance(value, ast.Set | ast.SetComp):
            return "set"
        if isinstance(value, ast.Call):
            name = self.qualname(value.func)
            if name in _CONTAINER_CALLS:
                return name.rsplit(".", 1)[-1]
            if name in CACHE_CLASSES:
                return "cache"
        return None

    # --- the walk ---------------------------------------------------------------------------

    def _visit(self, pairs: list[tuple[ast.AST, _Function | None]]) -> None:
        """Each node (`_walk`) handed to the hooks, with what the context knows of it."""
        for node, function in pairs:
            self.function = function
            if isinstance(node, _Function):
                for hook in HOOKS.on_function:
                    hook(self, node)
                function = node
            else:
                if function is not None and isinstance(node, _CHANGES):
                    self._in_function(node, function)
                if isinstance(node, ast.Call):
                    self._call(node, function)
                elif isinstance(node, ast.BoolOp):
                    self._defaults(node)
                elif isinstance(node, ast.Set):  # {"a", "b"}: values looked up, not set
                    self.keys.update(id(e) for e in node.elts)
                elif isinstance(node, ast.Dict):  # a key names a setting, a value sets it
                    self.keys.update(id(k) for k in node.keys if k is not None)
                    for key, value in zip(node.keys, node.values, strict=True):
                        if isinstance(key, ast.Constant):
                            self._assigned(str(key.value), value, function)
                elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        declared = self.declared(function)
                        self._assigned(_target_name(target, function, declared), node.value,
                                       function)  # fmt: skip
                elif isinstance(node, ast.Compare):  # `engine == "...sqlite3"` tests it
                    self.keys.update(map(id, ast.walk(node)))
                elif isinstance(node, ast.Constant | ast.JoinedStr) and id(node) not in self.keys:
                    self._string(node)
                    if isinstance(node, ast.JoinedStr):
                        self.keys.update(map(id, node.values))

    def _in_function(self, node: ast.AST, fn: _Function) -> None:
        if isinstance(node, ast.Global):
            for name in node.names:
                for hook in HOOKS.on_global:
                    hook(self, fn, name)
            return
        change = self._change(node, fn)
        if change is not None:
            for hook in HOOKS.on_change:
                hook(self, change)

    def _change(self, node: ast.AST, fn: _Function) -> Change | None:
        """What `node` changes that lives as long as the process, if anything: the app's
        state, a container attribute a method of a long-lived object owns, a container of
        another module of the tree, an item taken out of a module container, a module
        container."""
        target: ast.expr | None = None
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Subscript):
                    target = t.value
                elif _on_app(t):  # app.state.hits = ..., at request time
                    return Change(node, fn, ast.unparse(t), verb="set")
                elif isinstance(t, ast.Attribute) and self._of_current_app(t, fn):
                    return Change(node, fn, ast.unparse(t), verb="set", by_request=True)
                elif isinstance(t, ast.Attribute) and self._of_object(t, fn):  # settings.x = ...
                    return Change(node, fn, self._of_object(t, fn), verb="set")
                elif isinstance(t, ast.Attribute) and _is_name(t.value, "self"):
                    owned, maybe = self.owners.get(id(fn), {}), self.maybe.get(id(fn), {})
                    kept = owned.get(t.attr) or maybe.get(t.attr)
                    if (
                        kept is not None and kept.startswith(("attribute", "the attribute"))
                        and not self._harmless(node, fn) and not _set_lazily(fn, t.attr)
                    ):  # fmt: skip
                        gated = t.attr not in owned
                        return Change(node, fn, f"the {kept}", verb="set", gated=gated)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            func, args = node.value.func, node.value.args
            if isinstance(func, ast.Attribute) and func.attr in _MUTATORS:
                target = func.value
            elif _is_name(func, "setattr") and args and self._of_object(args[0], fn):
                return Change(node, fn, self._of_object(args[0], fn), verb="set")
        while isinstance(target, ast.Subscript):  # cache[user][key] = ...
            target = target.value
        if target is None or self._harmless(node, fn):
            return None
        whole, of_object = {ast.unparse(target)}, ""
        if isinstance(target, ast.Attribute):  # handler.listeners, `handler` a global
            of_object = self._of_object(target, fn)
            if of_object:  # which its class may read whole, as self.listeners
                whole.add(f"self.{target.attr}")
        if _adds_connection(node) and not whole & self.read_whole:
            return None  # this process's own connections, which nothing reaches all of
        if _on_app(target):  # request.app["clients"].append(ws), app.state.cache[k] = v
            return Change(node, fn, ast.unparse(target))
        if self._of_current_app(target, fn):  # current_app.config["sids"][sid] = [...]
            return Change(node, fn, ast.unparse(target), by_request=True)
        owned, maybe = self.owners.get(id(fn), {}), self.maybe.get(id(fn), {})
        if (
            isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
            and target.value.id in ("self", "cls")
        ):  # fmt: skip
            if target.attr in owned:
                return Change(node, fn, f"the {owned[target.attr]}")
            if target.attr in maybe and target.value.id == "self":
                return Change(node, fn, f"the {maybe[target.attr]}", gated=True)
            cls, attributes = self.classes.get(id(fn), ("", {}))
            if fn.name == "__init__" and target.attr in attributes:  # a registry of instances
                return Change(node, fn, f"the {attributes[target.attr]}", made_by=cls)
        if of_object and isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            made = self.objects[target.value.id]  # a container its class keeps on self
            if target.attr in self.instance_containers.get(made, ()):
                return Change(node, fn, of_object)
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            base = target.value.id
            of_class = self.class_containers.get(base, {}).get(target.attr)
            if of_class is not None and not _registers(fn):  # Plugin.registry[name] = ...
                return Change(node, fn, f"the {of_class}")
            if base in self.modules:  # state.cache[...] = ..., `state` a module of the tree
                kind = self.shared.get((self.modules[base], target.attr))
                if kind is None or _registers(fn):
                    return None
                return Change(node, fn, f"module-level {kind} '{base}.{target.attr}'")
            held = self.facts(fn, _items_of).get(base)  # terminal = terminals.get(key)
            if held in self.module_state and not _registers(fn):
                of = f"an item of the module-level {self.module_state[held]} '{held}'"
                return Change(node, fn, f"{ast.unparse(target)}, of {of},")
        if isinstance(target, ast.Name) and target.id in self.closures.get(id(fn), {}):
            return Change(node, fn, f"the {self.closures[id(fn)][target.id]}")
        if isinstance(target, ast.Name) and not _registers(fn):  # managers[sid] = manager
            held = self.facts(fn, _items_of).get(target.id, "")
            attribute = held.removeprefix("self.")
            if held.startswith("self.") and attribute in owned:
                return Change(node, fn, f"{target.id}, an item of the {owned[attribute]},")
            if held.startswith("self.") and attribute in maybe:
                of = f"{target.id}, an item of the {maybe[attribute]}"
                return Change(node, fn, of, gated=True)
        if isinstance(target, ast.Name) and target.id in self.module_state:
            name = target.id
            if name in _locals(fn) or _registers(fn):
                return None
            if isinstance(node, ast.Assign) and self._memo_of_key(node, fn):
                return None  # CACHE[spec] = XPath(spec): the same value everywhere
            what = f"module-level {self.module_state[name]} '{name}'"
            return Change(node, fn, what, session=name if "session" in name.lower() else None)
        return None

    def _of_current_app(self, node: ast.expr, fn: _Function) -> bool:
        """`current_app.config["sids"]`, `current_app.heartbeats` (Flask's or Quart's app
        at request time, under any name it is imported as), or a local bound to what
        `getattr(current_app, "heartbeats", {})` took from it."""
        if not self.current_app:
            return False
        while isinstance(node, ast.Attribute | ast.Subscript):
            node = node.value
        if not isinstance(node, ast.Name):
            return False
        if node.id in self.facts(fn, self._taken_from_app):
            return True
        return self.imports.get(node.id) in _CURRENT_APPS and node.id not in self.facts(fn, _locals)

    def _taken_from_app(self, fn: _Function) -> set[str]:
        taken: set[str] = set()
        for node in self.inside.get(id(fn), ()):
            if (
                isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and _is_name(node.value.func, "getattr") and node.value.args
                and isinstance(node.value.args[0], ast.Name)
                and self.imports.get(node.value.args[0].id) in _CURRENT_APPS
            ):  # fmt: skip
                taken.update(t.id for t in node.targets if isinstance(t, ast.Name))
        return taken

    def _of_object(self, node: ast.expr, fn: _Function) -> str:
        """`settings.theme` / `settings` where `settings` is a module-level object of a
        class of the tree: what it names (empty if not)."""
        base = node.value if isinstance(node, ast.Attribute) else node
        if not isinstance(base, ast.Name) or base.id not in self.objects:
            return ""
        if self.testing or fn.name.startswith("test"):
            return ""  # a test sets up its case
        if base.id in self.facts(fn, _locals):
            return ""
        what = f"the module-level {self.objects[base.id]} '{base.id}'"
        return f"{ast.unparse(node)}, of {what}," if base is not node else what

    def _harmless(self, node: ast.AST, fn: _Function) -> bool:
        """A change that keeps no state instances must share: a per-process handle to a
        shared server (a client, a pool), or `tasks.add(task)`, a strong reference to this
        process's own task."""
        if isinstance(node, ast.Assign):
            return _connects(node.value)
        return isinstance(node, ast.Expr) and _keeps_task(node.value, self.facts(fn, _task_names))

    def _memo_of_key(self, node: ast.Assign, fn: _Function) -> bool:
        """`CACHE[k] = f(k)` (or `v = f(k)` ... `CACHE[k] = v`), `f` a function imported from
        a library that is not a client of the network or a database (`re.compile`,
        `XPath`): the value depends on the key alone."""
        target = node.targets[0] if len(node.targets) == 1 else None
        if not isinstance(target, ast.Subscript):
            return False
        key, value = ast.unparse(target.slice), node.value
        if isinstance(value, ast.Name):  # result = XPath(spec); CACHE[spec] = result
            cache = ast.unparse(target.value)
            bound = [
                b.value for b in self.inside.get(id(fn), ())
                if isinstance(b, ast.Assign) and any(_is_name(t, value.id) for t in b.targets)
                and not ast.unparse(b.value).startswith(cache)  # result = CACHE.get(spec)
            ]  # fmt: skip
            value = bound[0] if len(bound) == 1 else value
        if not isinstance(value, ast.Call) or value.keywords or not value.args:
            return False
        if any(ast.unparse(arg) != key for arg in value.args):
            return False
        func = value.func
        head = func
        while isinstance(head, ast.Attribute):
            head = head.value
        if not isinstance(head, ast.Name) or head.id not in self.imports:
            return False  # the app's own function, or a method of an object: may do I/O
        origin = self.qualname(func)
        if origin.split(".")[0] in Path(self.path).parts[:-1]:
            return False  # imported from the app's own package
        return not origin.startswith(_REMOTE_LIBRARIES)

    def _string(self, node: ast.Constant | ast.JoinedStr) -> None:
        """A string the rules may know as a setting's value (a backend's name, a URL); an
        f-string only by a SQLite URL it starts with (`f"sqlite:///{path}"`)."""
        if isinstance(node, ast.JoinedStr):
            head = node.values[0] if node.values else None
            if not (isinstance(head, ast.Constant) and _sqlite_file_url(str(head.value) + "/")):
                return
            value = str(head.value) + "..."
        elif isinstance(node.value, str):
            value = node.value
        else:
            return
        for hook in HOOKS.on_string:
            hook(self, node, value)

    def _assigned(self, name: str, value: ast.expr, fn: _Function | None) -> None:
        """`name = value`: a variable, an attribute, a dict key, a keyword."""
        if name:
            for hook in HOOKS.on_assigned:
                hook(self, name, value, fn)

    def _defaults(self, node: ast.BoolOp) -> None:
        """`os.getenv("DB_ENGINE") or "django.db.backends.sqlite3"`: a default."""
        first = node.values[0]
        if isinstance(node.op, ast.Or) and isinstance(first, ast.Call):
            variable = self.env_read(first)
            if variable is not None:
                for value in node.values[1:]:
                    self.overridden[id(value)] = variable

    def _call(self, call: ast.Call, fn: _Function | None) -> None:
        if not self.testing and not (fn is not None and fn.name.startswith("test")):
            if fn is None:
                caller = _MAIN if id(call) in self.main else _STARTUP
            else:
                caller = _STARTUP if self.at_startup(fn) else fn.name
            called = _called_name(call)
            if called == "cls" and id(fn) in self.classes:  # cls(...) in a classmethod
                called = self.classes[id(fn)][0]
            self.calls.setdefault(called, set()).add(caller)
        variable = self.env_read(call)
        if variable is not None:
            for default in [*call.args[1:2], *(k.value for k in call.keywords)]:
                self.overridden[id(default)] = variable
        func = call.func
        if (
            fn is not None and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            and func.value.id in self.global_objects and not self.at_startup(fn)
            and func.value.id not in self.facts(fn, _locals)
        ):  # fmt: skip
            self.on_globals.add(func.attr)  # controller.register_worker(...)
        name = self.qualname(call.func)
        for hook in HOOKS.on_call:
            hook(self, call, name, fn)
        for keyword in call.keywords:  # AuthKeys(api_key=secrets.token_hex(16))
            if keyword.arg and (fn is None or self.declared(fn)):
                self._assigned(keyword.arg, keyword.value, fn)

    # --- startup contexts and loops ---------------------------------------------------------

    def _starts(self, fn: _Function) -> bool:
        """A startup hook: `@app.on_event("startup")`, Sanic's
        `@app.listener("before_server_start")`, Quart's `@app.before_serving`, Flask's
        `@app.before_first_request`, a lifespan, a function handed to `on_startup=[...]` /
        `add_event_handler("startup", ...)`, Django's `AppConfig.ready`, the `__init__` or
        a `start...` method of an object (long-lived when it starts a loop), or an app
        factory (`create_app`, `..._app`, a function that builds the app)."""
        name = fn.name
        if _is_route(fn):
            return False
        if name in self.startup or "lifespan" in name or "start" in name:
            return True
        if name in ("__init__", "ready", "create_app", "make_app", "app_factory", "init_app"):
            return True
        if name.endswith("_app") or any(
            isinstance(node, ast.Call) and _called_name(node) in _APP_CLASSES
            for node in self.inside.get(id(fn), ())
        ):  # it builds the app
            return True
        for decorator in fn.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            hook = self.qualname(target).rsplit(".", 1)[-1]
            if hook in _STARTUP_DECORATORS:
                return True
            if isinstance(decorator, ast.Call) and hook in ("on_event", "listener"):
                event = decorator.args[0] if decorator.args else None
                if isinstance(event, ast.Constant) and "start" in str(event.value):
                    return True
        return False

    def _periodic(self, fn: _Function) -> bool:
        """Does `fn` run a loop paced between rounds: by a sleep, or by waiting on an event
        with a timeout (`stop.wait(60)`, `asyncio.wait_for(stop.wait(), 60)`)?"""
        for node in ast.walk(fn):
            if isinstance(node, ast.While):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Call) and self._paces(inner):
                        return True
        return False

    def _paces(self, call: ast.Call) -> bool:
        name = self.qualname(call.func)
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
            self.qualname(call.func).endswith("add_event_handler")
            and len(args) == 2
            and isinstance(args[0], ast.Constant)
            and args[0].value == "startup"
            and isinstance(args[1], ast.Name)
        ):
            names.add(args[1].id)
        return names
