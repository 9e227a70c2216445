"""Settings from the environment `rung up --instances N` sets; each bad variable named."""

from __future__ import annotations

import pytest

from rung_links.settings import Settings

ENV = {
    "RUNG_PRIMARY_URL": "postgresql://rung@127.0.0.1:6432/rung_primary",
    "RUNG_REPLICA_URLS": "postgresql://a/r1, postgresql://b/r2,",
    "RUNG_CACHE_URL": "redis://127.0.0.1:6380/0",
    "RUNG_QUEUE_URL": "redis://127.0.0.1:6381/0",
    "RUNG_SECRET": "s" * 32,
    "RUNG_INSTANCE": "app1",
    "RUNG_GRACE": "0.5",
}


def test_settings_come_from_the_environment() -> None:
    settings = Settings.from_env({**ENV, "RUNG_LINKS_STATS_TTL": "2.5", "RUNG_LINKS_JOBS": "off"})
    assert settings.primary_url == ENV["RUNG_PRIMARY_URL"]
    assert settings.replica_urls == ("postgresql://a/r1", "postgresql://b/r2")
    assert (settings.instance, settings.grace, settings.stats_ttl, settings.jobs) == (
        "app1", 0.5, 2.5, False
    )  # fmt: skip
    assert (settings.namespace, settings.stream) == ("links", "clicks")


def test_defaults_apply_to_what_the_environment_leaves_out() -> None:
    env = {
        k: v
        for k, v in ENV.items()
        if k not in ("RUNG_REPLICA_URLS", "RUNG_INSTANCE", "RUNG_GRACE")
    }
    settings = Settings.from_env(env)
    assert (settings.replica_urls, settings.instance, settings.grace) == ((), "links", 2.0)
    assert (settings.stats_ttl, settings.jobs, settings.near_cache) == (5.0, True, 10_000)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"RUNG_PRIMARY_URL": ""}, "RUNG_PRIMARY_URL is required"),
        ({"RUNG_QUEUE_URL": " "}, "RUNG_QUEUE_URL is required"),
        ({"RUNG_SECRET": "short"}, "RUNG_SECRET is required: at least 32 characters"),
        ({"RUNG_GRACE": "soon"}, "RUNG_GRACE must be a number of seconds"),
        ({"RUNG_GRACE": "-1"}, "RUNG_GRACE must be a finite number of seconds >= 0"),
        (
            {"RUNG_LINKS_STATS_TTL": "0"},
            "RUNG_LINKS_STATS_TTL must be a finite number of seconds > 0",
        ),
        ({"RUNG_LINKS_STATS_TTL": "nan"}, "RUNG_LINKS_STATS_TTL must be a finite"),
        ({"RUNG_LINKS_NEAR_CACHE": "lots"}, "RUNG_LINKS_NEAR_CACHE must be a whole number"),
        ({"RUNG_LINKS_JOBS": "maybe"}, "RUNG_LINKS_JOBS must be 1/0"),
        ({"RUNG_INSTANCE": "app one"}, "RUNG_INSTANCE must be 1-64 of"),
    ],
)
def test_a_bad_variable_is_named(change: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env({**ENV, **change})


def test_a_missing_secret_is_named() -> None:
    env = {k: v for k, v in ENV.items() if k != "RUNG_SECRET"}
    with pytest.raises(ValueError, match="RUNG_SECRET is required"):
        Settings.from_env(env)


def test_the_secret_stays_out_of_the_repr() -> None:
    assert "s" * 32 not in repr(Settings.from_env(ENV))


def test_importing_the_app_module_needs_no_environment() -> None:
    """`create_app` can be imported anywhere; only `app` reads the environment."""
    import rung_links.app

    assert callable(rung_links.app.create_app)
