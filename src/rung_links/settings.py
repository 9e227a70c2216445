"""The service's configuration, from the environment `rung up --instances N` sets.

    settings = Settings.from_env()            # RUNG_PRIMARY_URL, RUNG_SECRET, ...
    settings = Settings(primary_url=..., cache_url=..., queue_url=..., secret=...)

Required: RUNG_PRIMARY_URL, RUNG_CACHE_URL, RUNG_QUEUE_URL, RUNG_SECRET (at least 32
characters: it signs sessions and consistency tokens, the same on every instance).
Optional: RUNG_REPLICA_URLS (comma-separated), RUNG_INSTANCE (a name for logs and the
`Rung-Instance` header), RUNG_GRACE (seconds of draining on SIGTERM), and the RUNG_LINKS_*
variables below. Four of them step down the ladder, for `rung lab` or a service that needs
no more: RUNG_LINKS_CACHE=off, RUNG_LINKS_CLICKS=direct, RUNG_LINKS_SCHEMA_VERSION=1 (the
tables without the secondary indexes) and RUNG_LINKS_DB_MAX_QUERIES=1 (no pooling).
A missing or malformed variable is a `ValueError` that names it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import overload

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
CLICKS = ("queue", "direct")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything an instance (and its drain) needs; seconds are floats."""

    primary_url: str
    replica_urls: tuple[str, ...] = ()
    cache_url: str
    queue_url: str
    secret: str = field(repr=False)
    instance: str = "links"
    grace: float = 2.0  # seconds an instance keeps serving after SIGTERM
    stats_ttl: float = 5.0  # seconds stats may be stale
    link_ttl: float = 300.0  # seconds a link stays cached (writes invalidate it at once)
    near_cache: int = 10_000  # entries of the in-process near cache (0: off)
    namespace: str = "links"  # cache namespace, session and singleton key prefix
    stream: str = "clicks"  # the queue's stream (the drain reads the same one)
    queue_max_depth: int = 1_000_000
    session_ttl: float = 14 * 86_400.0  # seconds of inactivity before a session ends
    secure_cookies: bool = False  # the Secure flag (behind HTTPS)
    jobs: bool = True  # run the singleton jobs (expire links, roll up stats)
    expire_every: float = 60.0
    rollup_every: float = 60.0
    db_pool: int = 10  # connections per database node
    max_lag: float = 5.0  # seconds behind past which a replica serves no reads
    queue_cooldown: float = 1.0  # seconds clicks skip an unreachable queue
    # The ladder's lower rungs, as configuration (`rung lab` climbs them; docs/lab.md):
    cache: bool = True  # off: every read goes to the database
    clicks: str = "queue"  # "direct": each click is its own INSERT on the request path
    schema_version: int | None = None  # apply migrations up to this version (None: all)
    db_max_queries: int = 50_000  # statements per connection (1: a connection per statement)

    def __post_init__(self) -> None:
        for name in ("primary_url", "cache_url", "queue_url"):
            if not getattr(self, name):
                raise ValueError(f"{name} is required")
        if len(self.secret) < 32:
            raise ValueError("secret must be at least 32 characters (e.g. secrets.token_hex(32))")
        for name in ("namespace", "stream", "instance"):
            if not _NAME.fullmatch(getattr(self, name)):
                raise ValueError(f"{name} must be 1-64 of [A-Za-z0-9_.-]")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{f.name} must be a finite number of seconds >= 0")
        for name in ("stats_ttl", "link_ttl", "expire_every", "rollup_every", "session_ttl"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 seconds")
        if self.db_pool < 1 or self.queue_max_depth < 1 or self.near_cache < 0:
            raise ValueError("db_pool and queue_max_depth must be >= 1, near_cache >= 0")
        if self.db_max_queries < 1 or (self.schema_version is not None and self.schema_version < 1):
            raise ValueError("db_max_queries and schema_version must be >= 1")
        if self.clicks not in CLICKS:
            raise ValueError(f"clicks must be one of {', '.join(CLICKS)}, not {self.clicks!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from `env` (default: os.environ); `ValueError` naming a bad variable."""
        env = os.environ if env is None else env
        reader = _Reader(env)
        return cls(
            primary_url=reader.required("RUNG_PRIMARY_URL"),
            replica_urls=reader.urls("RUNG_REPLICA_URLS"),
            cache_url=reader.required("RUNG_CACHE_URL"),
            queue_url=reader.required("RUNG_QUEUE_URL"),
            secret=reader.secret("RUNG_SECRET"),
            instance=reader.text("RUNG_INSTANCE", "links"),
            grace=reader.seconds("RUNG_GRACE", 2.0, positive=False),
            stats_ttl=reader.seconds("RUNG_LINKS_STATS_TTL", 5.0),
            link_ttl=reader.seconds("RUNG_LINKS_LINK_TTL", 300.0),
            near_cache=reader.integer("RUNG_LINKS_NEAR_CACHE", 10_000),
            namespace=reader.text("RUNG_LINKS_NAMESPACE", "links"),
            stream=reader.text("RUNG_LINKS_STREAM", "clicks"),
            queue_max_depth=reader.integer("RUNG_LINKS_QUEUE_MAX_DEPTH", 1_000_000),
            session_ttl=reader.seconds("RUNG_LINKS_SESSION_TTL", 14 * 86_400.0),
            secure_cookies=reader.flag("RUNG_LINKS_SECURE_COOKIES", False),
            jobs=reader.flag("RUNG_LINKS_JOBS", True),
            expire_every=reader.seconds("RUNG_LINKS_EXPIRE_EVERY", 60.0),
            rollup_every=reader.seconds("RUNG_LINKS_ROLLUP_EVERY", 60.0),
            db_pool=reader.integer("RUNG_LINKS_DB_POOL", 10),
            max_lag=reader.seconds("RUNG_LINKS_MAX_LAG", 5.0),
            cache=reader.flag("RUNG_LINKS_CACHE", True),
            clicks=reader.choice("RUNG_LINKS_CLICKS", CLICKS),
            schema_version=reader.integer("RUNG_LINKS_SCHEMA_VERSION", None),
            db_max_queries=reader.integer("RUNG_LINKS_DB_MAX_QUERIES", 50_000),
        )


class _Reader:
    """Reads one variable at a time, naming it in every error."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def required(self, name: str) -> str:
        value = self.env.get(name, "").strip()
        if not value:
            raise ValueError(f"{name} is required")
        return value

    def secret(self, name: str) -> str:
        value = self.env.get(name, "")
        if len(value) < 32:
            raise ValueError(f"{name} is required: at least 32 characters, the same everywhere")
        return value

    def urls(self, name: str) -> tuple[str, ...]:
        return tuple(url.strip() for url in self.env.get(name, "").split(",") if url.strip())

    def text(self, name: str, default: str) -> str:
        value = self.env.get(name, "").strip() or default
        if not _NAME.fullmatch(value):
            raise ValueError(f"{name} must be 1-64 of [A-Za-z0-9_.-], not {value!r}")
        return value

    def seconds(self, name: str, default: float, *, positive: bool = True) -> float:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None
        if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
            bound = "> 0" if positive else ">= 0"
            raise ValueError(f"{name} must be a finite number of seconds {bound}, not {raw!r}")
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        value = self.env.get(name, "").strip() or choices[0]
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        return value

    @overload
    def integer(self, name: str, default: int) -> int: ...
    @overload
    def integer(self, name: str, default: None) -> int | None: ...
    def integer(self, name: str, default: int | None) -> int | None:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{name} must be a whole number, not {raw!r}") from None

    def flag(self, name: str, default: bool) -> bool:
        raw = self.env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name} must be 1/0, true/false, yes/no or on/off, not {raw!r}")
