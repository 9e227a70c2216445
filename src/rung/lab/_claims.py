"""The seed's claims, measured: each one checked against the lab's results, held or not.

    for c in claims(results): print(c["claim"], c["measured"], c["held"], c["why"])

A claim whose stages did not run is left out. One that did not hold says why, as far as
the numbers tell: the reason is written for the machine the lab ran on.
"""

from __future__ import annotations

from typing import Any

Claim = dict[str, Any]
# Throughputs within this factor of each other count as the same. On a 2-core machine that
# runs every tier and the load, a stage's knee moves by up to a third from run to run.
TIE = 1.5


def claims(results: dict[str, Any]) -> list[Claim]:
    stages = {s["id"]: s for s in results["stages"]}
    cpus = results["machine"]["cpus"]
    shared = (
        f"{cpus} cores for every tier and the load generator: past the boxes, the tiers "
        "compete for the same CPUs"
    )
    found: list[Claim] = []

    def add(claim: str, measured: str, held: bool, why: str | None) -> None:
        found.append(
            {"claim": claim, "measured": measured, "held": held, "why": None if held else why}
        )

    naive, indexed = stages.get("naive"), stages.get("indexes")
    if naive and indexed and naive["stats_query_ms"] and indexed["stats_query_ms"]:
        ratio = naive["stats_query_ms"] / indexed["stats_query_ms"]
        add(
            "Indexes cut the stats query's time by at least 10x",
            f"{naive['stats_query_ms']:.2f} ms -> {indexed['stats_query_ms']:.3f} ms "
            f"({ratio:.0f}x)",
            ratio >= 10,
            "the clicks table is small enough here that a scan of it is cheap",
        )

    pool = stages.get("pool")
    if indexed and pool:
        ratio = _ratio(pool["throughput"], indexed["throughput"])
        bouncer = stages.get("pgbouncer")
        extra = f"; through PgBouncer {_rate(bouncer['throughput'])}" if bouncer else ""
        add(
            "A pool lifts throughput over a connection per request by at least 3x",
            f"{_rate(indexed['throughput'])} -> {_rate(pool['throughput'])} ({_x(ratio)}){extra}",
            ratio is not None and ratio >= 3,
            "connecting is cheap next to the rest of a request here; " + shared,
        )

    replica = stages.get("replica")
    if replica:
        share = sum(v for k, v in replica["read_share"].items() if k != "primary")
        add(
            "Replicas take the read traffic",
            f"{share:.0%} of the service's reads served by the replica",
            share >= 0.5,
            "the replica lagged past max_lag or read-your-writes sent reads to the primary",
        )

    cache = stages.get("cache")
    if cache and cache["cache"]["hit_rate"] is not None:
        hit = cache["cache"]["hit_rate"]
        per = cache["cache"]["db_reads_per_redirect"]
        add(
            "At a 90 % hit rate the cache cuts database reads per redirect to 0.11 or less",
            f"{hit:.1%} hits, {per} database reads per redirect",
            hit >= 0.9 and per is not None and per <= 0.11,
            f"the hit rate was {hit:.0%}" if hit < 0.9 else f"{per} database reads per redirect",
        )
        before = replica or stages.get("pgbouncer") or pool
        if before:
            ratio = _ratio(cache["throughput"], before["throughput"])
            add(
                "The cache lifts throughput by at least 1.1x (the seed: about 10x the reads)",
                f"{_rate(before['throughput'])} -> {_rate(cache['throughput'])} ({_x(ratio)})",
                ratio is not None and ratio >= 1.1,
                _cache_why(before),
            )

    many = stages.get("instances")
    if cache and many:
        ratio = _ratio(many["throughput"], cache["throughput"])
        add(
            f"Stateless instances scale out ({many['instances']} instances: at least 1.5x one)",
            f"{_rate(cache['throughput'])} -> {_rate(many['throughput'])} ({_x(ratio)})",
            ratio is not None and ratio >= 1.5,
            shared,
        )

    spike = results.get("spike")
    if spike and spike.get("queue"):
        queued = spike["queue"]
        direct = spike.get("direct")
        p99 = queued["accept_ms"]["p99"]
        lost = queued["clicks"]["lost"]
        direct_p99 = direct["accept_ms"]["p99"] if direct else None
        held = (
            p99 is not None and p99 < 20 and lost == 0 and (direct_p99 is None or direct_p99 >= 20)
        )
        measured = f"accept p99 {p99} ms with the queue, {lost} clicks lost"
        if direct:
            measured += f"; {direct_p99} ms with direct inserts"
        why = (
            f"{lost} clicks lost"
            if lost
            else "direct inserts kept up with this spike too"
            if direct_p99 is not None and direct_p99 < 20
            else "the app instances' CPU, not the database, limited the spike; " + shared
        )
        add(
            "A queue absorbs a 10x write spike: accept p99 under 20 ms, 0 clicks lost, "
            "where direct inserts are not",
            measured,
            held,
            why,
        )
    return found


def ordering(results: dict[str, Any], *, tie: float = TIE) -> str:
    """The stages in ladder order, each joined to the one before by how its throughput
    compares: `<` (at least `tie` times higher), `>` (that much lower) or `=`.

        "naive < indexes < pool = pgbouncer = replica = cache < instances < queue"

    Two runs on one machine give the same string when each rung's effect is larger than the
    run-to-run noise; `tie` absorbs that noise.
    """
    words: list[str] = []
    previous: float | None = None
    for stage in results["stages"]:
        now = stage["throughput"]
        if words:
            ratio = _ratio(now, previous)
            words.append(
                "?" if ratio is None else "<" if ratio >= tie else ">" if ratio <= 1 / tie else "="
            )
        words.append(stage["id"])
        previous = now
    return " ".join(words)


def busiest(stage: dict[str, Any]) -> tuple[str, float] | None:
    """The box that spent the largest share of its CPU periods at its quota during the
    stage's chosen step, and that share: what bounded the stage's throughput."""
    throttled = stage.get("throttled")
    if not isinstance(throttled, dict) or not throttled:
        return None
    box = max(throttled, key=lambda b: throttled[b])
    return box, float(throttled[box])


def _cache_why(before: dict[str, Any]) -> str:
    """Why the cache lifted throughput little over the stage `before` it: its measured bound."""
    app = (
        "one app instance's CPU box binds before the database does: a redirect still "
        "inserts its click, and a cache hit spares the instance only the read's share of "
        "its work"
    )
    found = busiest(before)
    if found is None or found[1] < 0.1:
        return app if found is None else "no box reached its CPU quota at the knee"
    box, share = found
    others = ", ".join(f"{b} {v:.0%}" for b, v in sorted(before["throttled"].items()) if b != box)
    measured = (
        f"at the {before['id']} stage's knee the box {box} waited for its CPU quota in "
        f"{share:.0%} of its periods ({others or 'no other box ran'})"
    )
    if box.startswith("app"):
        return f"{app}; {measured}"
    return f"{measured}, though the cache spares the database the reads"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} req/s"


def _x(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.1f}x"
