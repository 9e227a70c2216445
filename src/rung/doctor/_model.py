"""What the doctor reports: findings, each with its evidence and next step, and a verdict.

Finding("database", "connection churn", Verdict.act, "42.0 new sessions/s",
        "pool connections: rung.Database pools, or PgBouncer", {"sessions_per_s": 42.0},
        rung="pooling")
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

Evidence = int | float | str | bool | None

AREAS = ("database", "cache", "queue", "instances", "app")


class Verdict(enum.StrEnum):
    """ok: nothing to do; watch: heading for a limit; act: at one now; unreachable: the
    check could not run (its finding says which component and why)."""

    ok = "ok"
    watch = "watch"
    act = "act"
    unreachable = "unreachable"


# The ladder, in the order a team climbs it: each rung's name and what it means to take it.
RUNGS: dict[str, str] = {
    "indexes": "index the scans the top statements run (rung 1)",
    "pooling": "pool connections: rung.Database's pools, PgBouncer in transaction mode (rung 1)",
    "replicas": "read replicas with read/write splitting: rung.Database(replicas=...) (rung 1)",
    "cache": "cache-aside on Redis: rung.Cache (rung 2)",
    "stateless": "stateless instances behind a load balancer (rung 3)",
    "queue": "a queue-based load leveller: rung.Queue and rung.Drain (rung 4)",
}


@dataclass(frozen=True)
class Finding:
    """One check's result: `summary` says what was seen, `next_step` what to do about it,
    `evidence` the numbers behind both; `rung` the rung of the ladder it points to."""

    area: str
    name: str
    verdict: Verdict
    summary: str
    next_step: str
    evidence: Mapping[str, Evidence] = field(default_factory=dict)
    rung: str | None = None

    def __post_init__(self) -> None:
        if self.area not in AREAS:
            raise ValueError(f"area must be one of {AREAS}, not {self.area!r}")
        if self.rung is not None and self.rung not in RUNGS:
            raise ValueError(f"rung must be one of {tuple(RUNGS)}, not {self.rung!r}")


def unreachable(area: str, component: str, reason: str) -> Finding:
    """The finding of a check that could not run because `component` did not answer."""
    return Finding(
        area,
        f"{component} reachable",
        Verdict.unreachable,
        f"could not check: {component} unreachable: {reason}",
        f"make {component} reachable from here, then run the doctor again",
        {"component": component, "reason": reason},
    )


@dataclass(frozen=True)
class Step:
    """One rung to take next, with the findings that call for it."""

    rung: str
    action: str
    verdict: Verdict
    evidence: list[str]


@dataclass(frozen=True)
class Report:
    """Every finding, the inflection point the system is at (`at`), and the rungs to take
    next in order (`next`)."""

    findings: list[Finding]
    at: str
    next: list[Step]
    checked_at: str  # ISO 8601, UTC
