"""The ladder: each stage is a configuration of rung_links and of the stack, nothing more.

    for stage in select("naive,cache"): print(stage.id, stage.env(urls))

A stage names the environment its app instances get (rung_links' settings: docs/links.md),
how many instances run behind HAProxy and whether the click drain runs. The lab applies it
with `Stack.configure` and restarts the instances; no stage has code of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Stage:
    id: str
    step: int  # the rung number: pool and pgbouncer are both step 3
    title: str
    summary: str
    direct: bool = True  # straight to the primary (not through PgBouncer)
    replicas: bool = False
    pooled: bool = True  # an in-app pool (else a connection per statement)
    indexes: bool = True
    cache: bool = False
    queue: bool = False
    many: bool = False  # N instances behind HAProxy (else one)

    def env(self, urls: dict[str, Any]) -> dict[str, str]:
        """The service's environment over the stack's, from stack.json's `urls`."""
        env = {
            "RUNG_GRACE": "0",  # the lab restarts instances between stages: no drain wait
            "RUNG_LINKS_JOBS": "off",  # no rollup or expiry in the middle of a measurement
            "RUNG_LINKS_CACHE": "on" if self.cache else "off",
            "RUNG_LINKS_CLICKS": "queue" if self.queue else "direct",
        }
        if self.direct:
            env["RUNG_PRIMARY_URL"] = urls["primary_url"]
        if not self.replicas:
            env["RUNG_REPLICA_URLS"] = ""
        if not self.pooled:
            env["RUNG_LINKS_DB_MAX_QUERIES"] = "1"
        if not self.indexes:
            env["RUNG_LINKS_SCHEMA_VERSION"] = "1"
        if self.cache:  # a dashboard's numbers may be a minute old (the service's default: 5 s)
            env["RUNG_LINKS_STATS_TTL"] = "60"
        return env


STAGES = [
    Stage(
        "naive",
        1,
        "naive",
        "a connection per statement, primary keys only, no cache, one instance, "
        "each click inserted on the request path",
        pooled=False,
        indexes=False,
    ),
    Stage("indexes", 2, "+ indexes", "the migrations' secondary indexes", pooled=False),
    Stage("pool", 3, "+ pool", "an in-app pool (10 connections per instance)"),
    Stage(
        "pgbouncer", 3, "+ PgBouncer", "the pool through PgBouncer (transaction mode)", direct=False
    ),
    Stage(
        "replica",
        4,
        "+ replica",
        "reads split to the replica, read-your-writes on (rung.Database)",
        direct=False,
        replicas=True,
    ),
    Stage(
        "cache",
        5,
        "+ cache",
        "cache-aside on the redirect and stats (rung.Cache)",
        direct=False,
        replicas=True,
        cache=True,
    ),
    Stage(
        "instances",
        6,
        "+ instances",
        "N instances behind HAProxy",
        direct=False,
        replicas=True,
        cache=True,
        many=True,
    ),
    Stage(
        "queue",
        7,
        "+ queue",
        "clicks through rung.Queue and the drain; a 10x write spike",
        direct=False,
        replicas=True,
        cache=True,
        many=True,
        queue=True,
    ),
]


def select(names: str | None) -> list[Stage]:
    """The stages named in `names` (comma-separated ids, in ladder order), else all;
    `ValueError` naming an unknown one."""
    if not names:
        return list(STAGES)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {s.id for s in STAGES}
    if unknown := [n for n in wanted if n not in known]:
        raise ValueError(
            f"unknown stage {unknown[0]!r}: the stages are {', '.join(s.id for s in STAGES)}"
        )
    return [s for s in STAGES if s.id in wanted]
