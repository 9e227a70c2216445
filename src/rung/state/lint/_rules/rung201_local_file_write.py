"""RUNG201: a local file written at run time, judged by use: scratch files (tempfile's,
unique names) are not reported."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from rung.state.lint._rules._rule import Rule
from rung.state.lint._syntax import (
    _called_name,
    _from_request_files,
    _Function,
    _is_name,
    _made_unique,
    _names_a_path,
    _path_names,
    _upload_names,
)

if TYPE_CHECKING:
    from rung.state.lint._context import ModuleContext

RULE = Rule(
    "RUNG201", "local-file-write",
    "A local file is written at run time: other instances cannot read it and a redeploy "
    "loses it.",
    "Keep state in PostgreSQL, files in object storage, cached data in rung.Cache.",
)  # fmt: skip

_MOVES = {"os.replace", "os.rename", "shutil.move", "shutil.copy", "shutil.copyfile",
          "shutil.copy2"}  # fmt: skip


def on_call(ctx: ModuleContext, call: ast.Call, name: str, fn: _Function | None) -> None:
    if fn is None:
        return
    written = _written_file(ctx, call, name, fn)
    if written is not None and any(r is call for r in ctx.facts(fn, _returned_calls)):
        return  # an opener (`return os.fdopen(fd, "wb")`): its callers write, reported there
    opener = ctx.defined.get(_called_name(call))
    if written is None and opener is not None and opener is not fn and call.args:
        returned = ctx.facts(opener, _returned_calls)
        if any(_written_file(ctx, r, ctx.qualname(r.func), opener) for r in returned):
            written, name = call.args[0], opener.name  # with _open_upload(path) as f: ...
    if written is None or _made_unique(written, ctx.scratch(fn), ctx.scratch_makers):
        return
    removed = ctx.facts(fn, _removed)
    if any(
        isinstance(n, ast.Name) and removed.get(n.id, 0) > call.lineno for n in ast.walk(written)
    ):  # fmt: skip
        return  # written, then removed by the same function: scratch
    ctx.report(call, RULE.id, f"{fn.name}() writes a local file ({name.rsplit('.', 1)[-1]})")


def _returned_calls(fn: _Function) -> list[ast.Call]:
    """The calls `fn` returns (`return os.fdopen(fd, "wb")`), not those of nested functions."""
    returned: list[ast.Call] = []
    pending: list[ast.stmt] = list(fn.body)
    while pending:  # statements only: a return is one
        stmt = pending.pop()
        if isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.Call):
            returned.append(stmt.value)
        elif not isinstance(stmt, _Function | ast.ClassDef):
            for block in ("body", "orelse", "finalbody", "handlers", "cases"):
                pending.extend(getattr(stmt, block, ()))
    return returned


def _removed(fn: _Function) -> dict[str, int]:
    """The names whose file or directory `fn` removes (`path.unlink()`, `os.remove(path)`,
    `shutil.rmtree(tmp)`), each with the last line that does."""
    removed: dict[str, int] = {}
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute | ast.Name):
            continue
        func = node.func
        last = func.attr if isinstance(func, ast.Attribute) else func.id
        if last == "unlink" and isinstance(func, ast.Attribute) and not node.args:
            target: ast.expr | None = func.value  # path.unlink()
        elif last in ("remove", "unlink", "rmtree") and node.args:
            target = node.args[0]  # os.remove(path), shutil.rmtree(tmp)
        else:
            continue
        if isinstance(target, ast.Name):
            removed[target.id] = max(removed.get(target.id, 0), node.lineno)
    return removed


def _written_file(ctx: ModuleContext, call: ast.Call, name: str, fn: _Function) -> ast.expr | None:
    """The expression that names the file `call` writes, or None when it writes none:
    `open(path, "w")` / `path.open("a")` / `os.fdopen(fd, "w")` / `ZipFile(path, "w")` (a
    mode held in a variable of the function counts), `path.write_text(...)`,
    `os.replace(tmp, path)` / `shutil.move(src, path)`, and `x.save(path)` of an upload or
    to a path (`file_path`, `os.path.join(...)`, an f-string, a name bound to one)."""
    func = call.func
    last = name.rsplit(".", 1)[-1]
    if last in ("write_text", "write_bytes") and isinstance(func, ast.Attribute):
        return func.value
    if name in _MOVES:
        return call.args[1] if len(call.args) > 1 else None
    if last == "save":
        return _saved_to(ctx, call, fn)
    if name in ("os.fdopen", "zipfile.ZipFile") or name == "open":
        subject, position = (call.args[0] if call.args else None), 1
    elif isinstance(func, ast.Attribute) and func.attr == "open":
        module = isinstance(func.value, ast.Name) and func.value.id in ctx.imports
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
    if isinstance(mode, ast.Name):  # open(path, mode), mode = "wb" above or mode="w" a default
        modes = [
            node.value for node in ast.walk(fn)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            and any(_is_name(t, mode.id) for t in node.targets)
        ]  # fmt: skip
        default = _defaults(fn).get(mode.id)
        if isinstance(default, ast.Constant):
            modes.append(default)
    writes = any(isinstance(m.value, str) and any(c in m.value for c in "wax+") for m in modes)
    return subject if writes else None


def _defaults(fn: _Function) -> dict[str, ast.expr]:
    """`fn`'s parameters that have a default, with it."""
    args = fn.args
    positional = [*args.posonlyargs, *args.args]
    pairs = zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
    named = {a.arg: d for a, d in pairs}
    named.update(
        {a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None}
    )
    return named


def _saved_to(ctx: ModuleContext, call: ast.Call, fn: _Function) -> ast.expr | None:
    """`upload.save(path)` (werkzeug's `request.files[...]`, a name bound from it, a
    parameter annotated as an upload) or `doc.save(file_path)`: the path."""
    func = call.func
    if not (isinstance(func, ast.Attribute) and call.args):  # not form.save(commit=False)
        return None
    receiver, target = func.value, call.args[0]
    if isinstance(receiver, ast.Name) and receiver.id in ctx.facts(fn, _upload_names):
        return target
    if _from_request_files(receiver) or _names_a_path(target):
        return target
    if isinstance(target, ast.Name) and target.id in ctx.facts(fn, _path_names):
        return target  # target = Path(tempfile.gettempdir()) / name; img.save(target)
    return None
