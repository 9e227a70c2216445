"""What a piece of syntax is, for the checks of `_engine`: pure functions over AST nodes
(a global rebound lazily, a file name made unique, an upload, a loop that listens, a main
guard), with the names they know.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from typing import TypeAlias

_Function: TypeAlias = ast.FunctionDef | ast.AsyncFunctionDef
Walked: TypeAlias = list[tuple[_Function, list[ast.AST]]]  # functions, each with its nodes

# Calls whose result names a file no other call gets: tempfile's own, and unique names.
_LISTENS = {"subscribe", "psubscribe", "get_message", "xread", "xreadgroup", "add_listener"}
_CONNECTORS = ("client", "connect", "engine", "pool")
# Web app classes: a function that constructs one is an app factory
_APP_CLASSES = {"Flask", "Quart", "FastAPI", "Starlette", "Sanic", "Application", "Litestar"}
_TEMPFILES = {"mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryDirectory", "TemporaryFile",
              "SpooledTemporaryFile"}  # fmt: skip
_UNIQUE_NAMES = {"uuid1", "uuid4", "token_hex", "token_urlsafe"}
_UPLOAD_TYPES = {"FileStorage", "UploadFile", "UploadedFile"}


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


def _made_unique(node: ast.expr, scratch: set[str], makers: frozenset[str] = frozenset()) -> bool:
    """Does `node` name a scratch file of this call alone? Judged by how the name was made,
    not by its directory: tempfile's files and directories are (in a `dir=` of the app's,
    only those that delete themselves: a kept one there is the atomic-write idiom's), and
    so are unique names (uuid4, a `secrets` token)
    under the temp directory; `/tmp/cache/<key>.json` is not (another request reads it
    back), nor a fixed name under `gettempdir()`, nor a uuid4 name in `uploads/`. A
    context manager of the tree among `makers` removes what it yields: scratch too."""
    temporary = unique = False
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name) and inner.id in scratch:
            return True
        if isinstance(inner, ast.Call):
            called = _called_name(inner)
            if called in _TEMPFILES and (_deletes_itself(inner) or not _has_keyword(inner, "dir")):
                return True
            if called in makers:
                return True
            unique = unique or called in _UNIQUE_NAMES
            temporary = temporary or called == "gettempdir"
        elif isinstance(inner, ast.Constant) and str(inner.value).startswith("/tmp/"):
            temporary = True
    return temporary and unique


def _deletes_itself(call: ast.Call) -> bool:
    """A temporary directory, or a temporary file not kept (`delete=False` keeps one: the
    atomic-write idiom, `NamedTemporaryFile(dir=target_dir, delete=False)`, then a rename),
    is gone when its `with` ends, wherever it was made."""
    called = _called_name(call)
    if called in ("TemporaryDirectory", "TemporaryFile", "SpooledTemporaryFile"):
        return True
    kept = any(
        k.arg == "delete" and isinstance(k.value, ast.Constant) and not k.value.value
        for k in call.keywords
    )  # fmt: skip
    return called == "NamedTemporaryFile" and not kept


def _has_keyword(call: ast.Call, name: str) -> bool:
    return any(k.arg == name for k in call.keywords)


def _names_a_path(node: ast.expr) -> bool:
    """`file_path`, `self.path`, `os.path.join(...)`, `Path(...)`, `Path(d) / name`, an
    f-string."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _names_a_path(node.left)
    if isinstance(node, ast.Call):
        return _called_name(node) in ("join", "Path")
    named = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return any(word in named.lower() for word in ("path", "file"))


def _path_names(fn: _Function) -> set[str]:
    """Names `fn` binds to a path (`target = Path(tempfile.gettempdir()) / name`)."""
    return {
        target.id for target, value in _bindings(fn)
        if isinstance(target, ast.Name) and _names_a_path(value)
    }  # fmt: skip


def _scratch_names(fn: _Function, makers: frozenset[str] = frozenset()) -> set[str]:
    """Names `fn` binds to a unique file or directory (`fd, path = mkstemp()`, `with
    TemporaryDirectory() as d`), and names made from those (`p = os.path.join(d, "x")`),
    in source order."""
    names: set[str] = set()
    for target, value in _bindings(fn):
        if _made_unique(value, names, makers):
            names |= _names_in(target)
    return names


def _bindings(fn: _Function) -> Iterator[tuple[ast.expr, ast.expr]]:
    """(target, value) of each binding in `fn`: `=`, `: T =`, `:=`, `with ... as`, and
    `for ... in` (the value is what is iterated)."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign):
            yield from ((target, node.value) for target in node.targets)
        elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
            yield node.target, node.value
        elif isinstance(node, ast.With | ast.AsyncWith):
            yield from ((i.optional_vars, i.context_expr) for i in node.items if i.optional_vars)
        elif isinstance(node, ast.For | ast.AsyncFor):
            yield node.target, node.iter


_ROUTE_DECORATORS = {"get", "post", "put", "patch", "delete", "route", "api_route", "websocket"}


def _is_route(fn: _Function) -> bool:
    """A request handler: `@app.get("/")`, `@bp.route(...)`, `@self.route(...)`."""
    for decorator in fn.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr in _ROUTE_DECORATORS:
            return True
    return False


def _names_in(target: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}


def _upload_names(fn: _Function) -> set[str]:
    """Names in `fn` that hold an uploaded file: parameters annotated FileStorage /
    UploadFile / UploadedFile, and names bound from `request.files`."""
    uploads = {
        a.arg
        for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
        if a.annotation is not None and _names_upload_type(a.annotation)
    }
    for target, value in _bindings(fn):
        if _from_request_files(value):
            uploads |= _names_in(target)
    return uploads


def _from_request_files(node: ast.expr) -> bool:
    return any(
        isinstance(inner, ast.Attribute) and inner.attr == "files"
        and isinstance(inner.value, ast.Name) and inner.value.id == "request"
        for inner in ast.walk(node)
    )  # fmt: skip


def _names_debug(test: ast.expr) -> bool:
    """`DEBUG`, `settings.DEBUG`, `app.debug`: a test that holds only in development."""
    return any(
        (isinstance(n, ast.Name) and n.id == "DEBUG")
        or (isinstance(n, ast.Attribute) and n.attr in ("DEBUG", "debug"))
        for n in ast.walk(test)
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
    secret (`api_key = token_hex()` there is usually a user's key, bound for the database),
    is bound in a function that says secret (`gen_secret_key`), or is declared global."""
    if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
        return str(target.slice.value)
    if isinstance(target, ast.Attribute):
        return target.attr if fn is None or target.attr == "secret_key" else ""
    if isinstance(target, ast.Name):
        if fn is None or "secret" in target.id.lower() or target.id == "CACHE_TYPE":
            return target.id
        if "secret" in fn.name.lower():  # gen_secret_key(): key = os.urandom(64)
            return target.id
        return target.id if target.id in declared else ""
    return ""


def _subscribes(nodes: Iterable[ast.AST]) -> bool:
    """Does a call among `nodes` subscribe to a shared server (pub/sub, a stream)?"""
    return any(isinstance(node, ast.Call) and _called_name(node) in _LISTENS for node in nodes)


def _listens(fn: _Function, defined: dict[str, _Function]) -> bool:
    """Does the loop of `fn`, or a function of this module it calls, subscribe to a shared
    server (pub/sub, a stream)? Every instance needs its own listener: not a timer."""
    called = {_called_name(node) for node in ast.walk(fn) if isinstance(node, ast.Call)}
    bodies = [fn, *(defined[name] for name in called if name in defined)]
    return _subscribes(node for body in bodies for node in ast.walk(body))


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
        name
        for target, value in _bindings(fn)
        if isinstance(value, ast.Call)
        and _called_name(value) in ("create_task", "ensure_future", "start_soon")
        for name in _names_in(target)
    }


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
    if not colon or scheme.split("+")[0] != "sqlite" or not rest or rest[0].isspace():
        return False  # "sqlite: database is locked" is a message
    return rest not in ("//", "///:memory:", ":memory:")


def _memory_db(call: ast.Call) -> bool:
    first = call.args[0] if call.args else None
    return isinstance(first, ast.Constant) and first.value in (":memory:", "")


def _mem_url(call: ast.Call) -> bool:
    first = call.args[0] if call.args else None
    return isinstance(first, ast.Constant) and str(first.value).startswith("mem://")


def _keyed_on_self(methods: Walked) -> set[str]:
    """The attributes of `self` that a method other than `__init__` stores into by key:
    `self.data[k] = v`, `self.data["watching"][k] = v`."""
    keyed: set[str] = set()
    for method, nodes in methods:
        if method.name == "__init__":
            continue
        for node in nodes:
            if isinstance(node, ast.Assign | ast.AugAssign):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    while isinstance(target, ast.Subscript):
                        target = target.value
                        if isinstance(target, ast.Attribute) and _is_name(target.value, "self"):
                            keyed.add(target.attr)
    return keyed


def _items_of(fn: _Function) -> dict[str, str]:
    """The names `fn` binds to an item of a container that a bare name (or an attribute of
    `self`) holds, with that name: `terminal = terminals[key]`, `.get(key)`,
    `.setdefault(key, ...)`, `managers = self.managers[sid]` ('self.managers')."""
    items: dict[str, str] = {}
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
            if value.func.attr not in ("get", "setdefault"):
                continue
            value = value.func.value
        elif isinstance(value, ast.Subscript):
            value = value.value
        else:
            continue
        if isinstance(target, ast.Name) and isinstance(value, ast.Name):
            items[target.id] = value.id
        elif (
            isinstance(target, ast.Name) and isinstance(value, ast.Attribute)
            and _is_name(value.value, "self")
        ):  # fmt: skip
            items[target.id] = f"self.{value.attr}"  # managers = self.managers[sid]
    return items


_CONNECTION = re.compile(r"(^|_)(ws|websocket|socket|sock)$", re.IGNORECASE)
_VIEWS = {"values", "items", "keys", "copy"}
_WHOLE = {"list", "tuple", "set", "sorted", "len", "frozenset"}


def _adds_connection(node: ast.AST) -> bool:
    """`conns.append(ws)`, `conns.add(websocket)`, `queues[ws] = ...`: the change puts a
    live connection (a name that says so) into a container, or keys one by it."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        added = node.value.args[:1]
    elif isinstance(node, ast.Assign):
        added = [t.slice for t in node.targets if isinstance(t, ast.Subscript)]
    else:
        return False
    return any(isinstance(a, ast.Name) and _CONNECTION.search(a.id) for a in added)


def _read_whole(nodes: list[ast.AST]) -> set[str]:
    """The containers `nodes` (a module's) read as a whole, as source text: what a loop or
    a comprehension iterates (`for ws in self.clients.values()`), or `len(x)`, `list(x)`."""
    read: set[str] = set()
    for node in nodes:
        whole: ast.expr | None = None
        if isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
            whole = node.iter
        elif (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _WHOLE and node.args
        ):  # fmt: skip
            whole = node.args[0]
        while isinstance(whole, ast.Call):  # clients.values(), list(clients)
            func = whole.func
            if isinstance(func, ast.Attribute) and func.attr in _VIEWS:
                whole = func.value
            elif isinstance(func, ast.Name) and func.id in _WHOLE and whole.args:
                whole = whole.args[0]
            else:
                break
        if whole is not None:
            read.add(ast.unparse(whole))
    return read


def _made_here(tree: ast.Module, imports: dict[str, str]) -> set[str]:
    """The module globals bound, at module level (under `if __name__ == "__main__":` too),
    to what a call of this module's own makes: `store = Store()`, `args, controller =
    create_controller()`; not a library's (`app = Flask(...)`, imported)."""
    made: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        stmt = pending.pop()
        if isinstance(stmt, ast.If | ast.Try):
            pending.extend([*stmt.body, *stmt.orelse])
        elif (
            isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id not in imports
        ):  # fmt: skip
            for target in stmt.targets:
                made |= _names_in(target)
    return made


def _rebound_on_self(methods: Walked) -> set[str]:
    """The attributes of `self` that a method other than `__init__` keeps a count or a
    time in: `self.calls += 1`, `self.last_request_time = time.time()`."""
    rebound: set[str] = set()
    for method, nodes in methods:
        if method.name.startswith("__"):  # __init__; __iter__ / __next__ keep an iterator's
            continue
        for node in nodes:
            targets: list[ast.expr]
            if isinstance(node, ast.AugAssign):
                targets = [node.target]
            elif isinstance(node, ast.Assign) and _reads_clock(node.value):
                targets = node.targets
            else:
                continue
            for target in targets:
                if isinstance(target, ast.Attribute) and _is_name(target.value, "self"):
                    rebound.add(target.attr)
    return rebound


_CLOCKS = {"time", "monotonic", "perf_counter", "now", "utcnow"}


def _reads_clock(value: ast.expr) -> bool:
    """`time.time()`, `time.monotonic()`, `datetime.now()`, `loop.time()`..."""
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr in _CLOCKS
        for node in ast.walk(value)
    )  # fmt: skip


def _set_lazily(fn: _Function, attr: str) -> bool:
    """Does `fn` set `self.<attr>` only when it is unset (`if self.x is None:`, `if not
    self.x:`), or return early when it is set (`if self.x is not None: return self.x`)?"""
    for node in ast.walk(fn):
        if isinstance(node, ast.If):
            test = node.test
            subject = test.operand if isinstance(test, ast.UnaryOp) else test
            subject = subject.left if isinstance(subject, ast.Compare) else subject
            if (
                isinstance(subject, ast.Attribute)
                and subject.attr == attr
                and _is_name(subject.value, "self")
            ):
                return True
    return False
