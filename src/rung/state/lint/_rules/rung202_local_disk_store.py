"""RUNG202: a database or cache on the local disk, made by a call or picked by a setting."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from rung.state.lint._rules._rule import Rule
from rung.state.lint._syntax import _Function, _memory_db, _sqlite_file_url

if TYPE_CHECKING:
    from rung.state.lint._context import ModuleContext

RULE = Rule(
    "RUNG202", "local-disk-store",
    "A database or cache on the local disk (shelve, dbm, sqlite file, diskcache, "
    "joblib.Memory, pickle to a file) is per instance.",
    "Keep state in PostgreSQL (rung.Database), cached data in rung.Cache.",
)  # fmt: skip

_STORES = {
    "shelve.open", "dbm.open", "diskcache.Cache", "diskcache.FanoutCache", "diskcache.Index",
    "diskcache.Deque", "joblib.Memory", "pickle.dump", "marshal.dump",
}  # fmt: skip
# Settings whose value picks a store on this instance's disk: what it does.
_BACKENDS = {
    "django.db.backends.sqlite3": "the SQLite database is a file on this instance's disk",
    "django.core.cache.backends.filebased.FileBasedCache": "the cache is files on this "
    "instance's disk",
    "huey.SqliteHuey": "the task queue is a SQLite file on this instance's disk",
}  # fmt: skip
_SUFFIXES = {
    "FileSystemStorage": "uploaded files stay on this instance's disk",
    "WhooshEngine": "the search index is a directory on this instance's disk",
}
_CACHE_TYPES = {"filesystem", "FileSystemCache"}  # Flask-Caching's, on this disk
_INDEX_DIRS = {"WHOOSHEE_DIR", "WHOOSH_BASE"}  # Flask-Whooshee's, Flask-WhooshAlchemy's


def on_call(ctx: ModuleContext, call: ast.Call, name: str, fn: _Function | None) -> None:
    if name in _STORES:
        ctx.report(call, RULE.id, f"{name}() keeps data on the local disk")
    elif name == "sqlite3.connect" and not _memory_db(call):
        ctx.report(call, RULE.id, "sqlite3.connect() to a file keeps data on the local disk")


def on_string(ctx: ModuleContext, node: ast.expr, value: str) -> None:
    what = _BACKENDS.get(value)
    if what is None and "." in value:
        what = _SUFFIXES.get(value.rsplit(".", 1)[-1])
    if what is None and _sqlite_file_url(value):
        what = "a SQLite URL: the database is a file on this instance's disk"
    if what is not None:
        ctx.setting(node, RULE.id, value, what)


def on_assigned(ctx: ModuleContext, name: str, value: ast.expr, fn: _Function | None) -> None:
    if name == "CACHE_TYPE" and isinstance(value, ast.Constant) and value.value in _CACHE_TYPES:
        ctx.report(value, RULE.id, f"CACHE_TYPE {value.value!r} keeps the cache in this "
                   "instance's disk")  # fmt: skip
    elif name in _INDEX_DIRS:
        ctx.report(value, RULE.id, f"{name}: the search index is a directory on this instance's "
                   "disk")  # fmt: skip
