"""The claims and the ordering, from results shaped as the lab writes them."""

from __future__ import annotations

from typing import Any

from rung.lab import claims as claims_module

claims = claims_module.claims
ordering = claims_module.ordering


def stage(id: str, throughput: float | None, **extra: Any) -> dict[str, Any]:
    return {"id": id, "throughput": throughput, "stats_query_ms": None, **extra}


def results(*stages: dict[str, Any]) -> dict[str, Any]:
    return {"stages": list(stages), "machine": {"cpus": 2}, "spike": None}


def test_the_ordering_joins_each_stage_to_the_one_before() -> None:
    ladder = results(
        stage("naive", 10.0), stage("indexes", 40.0), stage("pool", 300.0),
        stage("pgbouncer", 280.0), stage("replica", 150.0), stage("cache", None),
    )  # fmt: skip
    assert ordering(ladder) == "naive < indexes < pool = pgbouncer > replica ? cache"
    assert ordering(ladder, tie=1.05) == "naive < indexes < pool > pgbouncer > replica ? cache"


def test_the_ordering_counts_exactly_the_tie_as_a_step() -> None:
    assert ordering(results(stage("a", 100.0), stage("b", 150.0)), tie=1.5) == "a < b"
    assert ordering(results(stage("a", 100.0), stage("b", 149.0)), tie=1.5) == "a = b"


def cached(
    hit: float, per: float, before: float, after: float, **replica_facts: Any
) -> list[dict[str, Any]]:
    replica = stage("replica", before, read_share={"replica1": 1.0}, **replica_facts)
    cache = stage("cache", after, cache={"hit_rate": hit, "db_reads_per_redirect": per})
    return [c for c in claims(results(replica, cache)) if "cache" in c["claim"]]


def test_the_cache_claims_are_the_reads_and_the_lift_each_with_its_reason() -> None:
    reads, lift = cached(0.92, 0.05, before=300.0, after=390.0)
    assert reads["held"] and lift["held"] and reads["why"] is None
    assert lift["measured"] == "300 req/s -> 390 req/s (1.3x)"
    reads, lift = cached(0.85, 0.15, before=300.0, after=300.0)
    assert not reads["held"] and reads["why"] == "the hit rate was 85%"
    assert not lift["held"] and "CPU box" in lift["why"]
    reads, _ = cached(0.95, 0.2, before=300.0, after=400.0)
    assert not reads["held"] and reads["why"] == "0.2 database reads per redirect"


def test_a_lift_that_did_not_hold_names_the_box_that_bounded_the_stage_before() -> None:
    app_bound = {"app1": 0.91, "primary": 0.02, "replica": 0.0}
    _, lift = cached(0.95, 0.05, before=600.0, after=610.0, throttled=app_bound)
    assert lift["why"].startswith("one app instance's CPU box binds before the database")
    assert lift["why"].endswith(
        "at the replica stage's knee the box app1 waited for its CPU quota in 91% of its "
        "periods (primary 2%, replica 0%)"
    )
    db_bound = {"app1": 0.2, "replica": 0.7}
    _, lift = cached(0.95, 0.05, before=600.0, after=610.0, throttled=db_bound)
    assert lift["why"] == (
        "at the replica stage's knee the box replica waited for its CPU quota in 70% of its "
        "periods (app1 20%), though the cache spares the database the reads"
    )
    _, lift = cached(0.95, 0.05, before=600.0, after=610.0, throttled={"app1": 0.05})
    assert lift["why"] == "no box reached its CPU quota at the knee"
