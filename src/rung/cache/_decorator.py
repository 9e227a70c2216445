"""`Cache.cached`: an async function's result cached under a key filled from its arguments.

    @cache.cached(key="link:{slug}", ttl=60.0, tags=("owner:{owner_id}",))
    async def load_link(slug: str, owner_id: int) -> dict | None: ...

Templates are `str.format` templates over the function's parameters, defaults included;
one that names something else is refused when the function is decorated.
"""

from __future__ import annotations

import functools
import inspect
import string
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from rung.cache._cache import Cache

T = TypeVar("T")
P = ParamSpec("P")


class Cached:
    """The decorator `cache.cached(...)` returns (`ttl` already checked)."""

    def __init__(self, cache: Cache, *, key: str, ttl: float | None, tags: tuple[str, ...]) -> None:
        self._cache = cache
        self._key = key
        self._ttl = ttl
        self._tags = tags

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        cache, key, ttl, tags = self._cache, self._key, self._ttl, self._tags
        signature = inspect.signature(fn)
        for template in (key, *tags):
            unknown = _fields(template) - signature.parameters.keys()
            if unknown:
                raise ValueError(
                    f"{fn.__qualname__}: template {template!r} names {sorted(unknown)}, "
                    f"which are not parameters of the function"
                )

        arguments = _binder(signature)

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            names = arguments(args, kwargs)
            return await cache.get_or_load(
                key.format_map(names),
                functools.partial(fn, *args, **kwargs),
                ttl=ttl,
                tags=[t.format_map(names) for t in tags],
            )

        return wrapper


def _binder(
    signature: inspect.Signature,
) -> Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]:
    """A fast `signature.bind(...)` + `apply_defaults()` for plain parameters; a call that
    does not fit (missing or unknown arguments, *args, **kwargs) takes the slow path, which
    raises the same TypeError the function would."""

    def slow(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.arguments

    params = signature.parameters.values()
    if any(p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params):
        return slow
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    defaults = {p.name: p.default for p in params if p.default is not p.empty}
    count = len(signature.parameters)

    def fast(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        names = defaults.copy()
        names.update(zip(positional, args, strict=False))
        names.update(kwargs)
        if len(names) != count or len(args) > len(positional):
            return slow(args, kwargs)
        return names

    return fast


def _fields(template: str) -> set[str]:
    """The top-level names a str.format template uses: 'link:{slug}' -> {'slug'}."""
    return {
        name.split(".")[0].split("[")[0]
        for _, name, _, _ in string.Formatter().parse(template)
        if name
    }
