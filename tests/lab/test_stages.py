"""Each stage is a configuration of rung_links and the stack: its environment, nothing more."""

from __future__ import annotations

import pytest

from rung.lab import stages
from rung_links.settings import Settings

URLS = {"primary_url": "postgresql://rung@127.0.0.1:5/rung"}
STACK_ENV = {
    "RUNG_PRIMARY_URL": "postgresql://rung@127.0.0.1:6/rung_primary",
    "RUNG_REPLICA_URLS": "postgresql://rung@127.0.0.1:6/rung_replica1",
    "RUNG_CACHE_URL": "redis://127.0.0.1:7/0",
    "RUNG_QUEUE_URL": "redis://127.0.0.1:8/0",
    "RUNG_SECRET": "s" * 64,
}


def settings(stage_id: str) -> Settings:
    """The settings an instance of the stage reads: the stack's environment, the stage's over it."""
    stage = next(s for s in stages.STAGES if s.id == stage_id)
    return Settings.from_env({**STACK_ENV, **stage.env(URLS)})


def test_the_ladder_has_the_seven_rungs_in_order() -> None:
    assert [s.id for s in stages.STAGES] == [
        "naive", "indexes", "pool", "pgbouncer", "replica", "cache", "instances", "queue"
    ]  # fmt: skip
    assert [s.step for s in stages.STAGES] == [1, 2, 3, 3, 4, 5, 6, 7]


def test_naive_is_a_connection_per_statement_to_the_primary_without_indexes_or_cache() -> None:
    naive = settings("naive")
    assert naive.primary_url == URLS["primary_url"]  # not through PgBouncer
    assert (naive.replica_urls, naive.db_max_queries, naive.schema_version) == ((), 1, 1)
    assert (naive.cache, naive.clicks, naive.jobs) == (False, "direct", False)


def test_each_rung_adds_what_it_names() -> None:
    assert settings("indexes").schema_version is None
    assert settings("pool").db_max_queries == 50_000
    assert settings("pgbouncer").primary_url == STACK_ENV["RUNG_PRIMARY_URL"]
    assert settings("replica").replica_urls == (STACK_ENV["RUNG_REPLICA_URLS"],)
    assert (settings("replica").cache, settings("cache").cache) == (False, True)
    assert (settings("instances").clicks, settings("queue").clicks) == ("direct", "queue")
    assert [s.many for s in stages.STAGES] == [False] * 6 + [True] * 2


def test_select_keeps_ladder_order_and_names_an_unknown_stage() -> None:
    assert [s.id for s in stages.select("queue, naive")] == ["naive", "queue"]
    assert stages.select(None) == stages.STAGES
    with pytest.raises(ValueError, match="unknown stage 'turbo': the stages are naive, "):
        stages.select("naive,turbo")
