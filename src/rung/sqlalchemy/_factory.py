"""`rung.sqlalchemy.sessionmaker`: routing sessions over a rung.Database and its engines.

    db = rung.Database(primary_url, replica_urls)
    Session = rung.sqlalchemy.sessionmaker(db)                           # engines from db's URLs
    Session = rung.sqlalchemy.sessionmaker(db, primary=e0, replicas=[e1])  # your own engines
    Session = rung.sqlalchemy.sessionmaker(primary=e0, replicas=[e1])      # a Database from theirs

The Database monitors the replicas and owns the context's token, so `rung.web`'s middleware
(given `Session.db`), `db.fetch` and a routing session all read each other's writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from rung.db import Database
from rung.sqlalchemy import _pooler
from rung.sqlalchemy._router import Router
from rung.sqlalchemy._session import RoutingSession


class SessionMaker(async_sessionmaker[RoutingSession]):
    """An `async_sessionmaker` of routing sessions, with the Database they route by.
    `Session()` makes a session; `Session.begin()` one in a transaction that commits.
    The Database opens with the first session if it is not open; `close()` (or `async with
    Session:`) closes what the factory made itself: its Database, its engines."""

    def __init__(self, primary: AsyncEngine, *, router: Router, owns_db: bool,
                 owned_engines: Sequence[AsyncEngine], **session_options: Any) -> None:  # fmt: skip
        super().__init__(primary, class_=RoutingSession, router=router, **session_options)
        self.router = router
        self._owns_db = owns_db
        self._owned_engines = list(owned_engines)

    @property
    def db(self) -> Database:
        """The Database whose token and replica positions the sessions use: give it to
        `rung.web.TokenMiddleware` to carry the token over HTTP."""
        return self.router.db

    async def open(self) -> None:
        """Open the Database now rather than with the first session."""
        await self.router.open()

    async def close(self) -> None:
        """Close the Database and dispose of the engines, if this factory made them."""
        if self._owns_db:
            await self.db.close()
        for engine in self._owned_engines:
            await engine.dispose()

    async def __aenter__(self) -> SessionMaker:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def sessionmaker(
    db: Database | None = None,
    *,
    primary: AsyncEngine | None = None,
    replicas: Sequence[AsyncEngine] | None = None,
    max_lag: float | None = None,
    causal_wait: float | None = None,
    engine_options: Mapping[str, Any] | None = None,
    **session_options: Any,
) -> SessionMaker:
    """A factory of routing sessions (see the module docstring for the three forms).

    `primary`/`replicas`: AsyncEngines on `postgresql+asyncpg`, the replicas in the order of
    `db`'s replica URLs. Without them, engines are made from `db`'s URLs with
    `engine_options` (`create_async_engine`'s). Without `db`, a Database is made from the
    engines' URLs, with `max_lag` and `causal_wait` (seconds; the Database's defaults
    otherwise). `session_options` go to every session (`expire_on_commit=False`, ...).
    Engines through PgBouncer in transaction mode need no option: it is detected.
    A setting that cannot work is a `ValueError` naming it, here, not at the first query.
    """
    if db is not None and not isinstance(db, Database):
        raise ValueError(f"db must be a rung.Database, not {db!r:.80}")
    if primary is None and replicas is not None:
        raise ValueError("replicas needs primary: give both engines, or neither (with db)")
    owned: list[AsyncEngine] = []
    if primary is None:
        if db is None:
            raise ValueError("sessionmaker() needs db=, or primary= (an AsyncEngine), or both")
        options = dict(engine_options or {})
        primary = create_async_engine(_asyncpg_url(db._primary.url), **options)
        replicas = [create_async_engine(_asyncpg_url(r.url), **options) for r in db._replicas]
        owned = [primary, *replicas]
    elif engine_options is not None:
        raise ValueError("engine_options is for engines made from db's URLs, not given ones")
    replicas = list(replicas or ())
    _check_engine("primary", primary)
    for i, engine in enumerate(replicas):
        _check_engine(f"replicas[{i}]", engine)
    if len({id(e) for e in (primary, *replicas)}) != 1 + len(replicas):
        raise ValueError("primary and replicas must be distinct engines")
    owns_db = db is None
    if db is None:
        settings: dict[str, Any] = {k: v for k, v in (("max_lag", max_lag),
                                    ("causal_wait", causal_wait)) if v is not None}  # fmt: skip
        db = Database(_dsn(primary), [_dsn(e) for e in replicas], **settings)
    elif max_lag is not None or causal_wait is not None:
        raise ValueError("max_lag and causal_wait are the Database's: set them on rung.Database")
    elif len(replicas) != len(db._replicas):
        raise ValueError(f"replicas must have an engine per replica of db: {len(db._replicas)}, "
                         f"not {len(replicas)}")  # fmt: skip
    for engine in (primary, *replicas):
        _pooler.install(engine, timeout=db._primary.acquire_timeout)
    router = Router(db, primary, replicas)
    factory = SessionMaker(primary, router=router, owns_db=owns_db, owned_engines=owned,
                           **session_options)  # fmt: skip
    factory().sync_session.close()  # a session option SQLAlchemy refuses fails here, not later
    return factory


def _check_engine(name: str, engine: object) -> None:
    if not isinstance(engine, AsyncEngine):
        raise ValueError(f"{name} must be an AsyncEngine (create_async_engine), not {engine!r:.80}")
    dialect = engine.dialect
    if (dialect.name, dialect.driver) != ("postgresql", "asyncpg"):
        raise ValueError(f"{name} must be an engine on postgresql+asyncpg, not "
                         f"{dialect.name}+{dialect.driver}")  # fmt: skip


def _asyncpg_url(url: str) -> str:
    """A libpq-style URL as SQLAlchemy's asyncpg dialect takes it."""
    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def _dsn(engine: AsyncEngine) -> str:
    """An engine's URL as asyncpg takes it (the dialect's own query options left out)."""
    return engine.url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
