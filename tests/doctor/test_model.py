"""The doctor's pure parts: verdict order, targets, filters' columns, /metrics parsing."""

from pathlib import Path

import jsonschema
import pytest

from rung.doctor import (
    SCHEMA,
    Finding,
    Targets,
    Verdict,
    app,
    model,
    plans,
    to_dict,
    to_markdown,
    verdicts,
)

app_hit_rate, parse = app.app_hit_rate, app.parse
unreachable = model.unreachable
SeqScan = plans.SeqScan
verdict = verdicts.verdict


def finding(verdict_: Verdict, rung: str | None, name: str = "x") -> Finding:
    return Finding("database", name, verdict_, f"{name} seen", "do it", {"n": 1}, rung=rung)


def test_next_rungs_are_act_first_then_watch_each_in_ladder_order() -> None:
    report = verdict(
        [
            finding(Verdict.watch, "indexes"),
            finding(Verdict.act, "queue"),
            finding(Verdict.act, "pooling"),
            finding(Verdict.ok, "cache"),
            finding(Verdict.watch, "pooling"),
        ],
        checked_at="2026-01-01T00:00:00+00:00",
    )
    assert [(s.rung, s.verdict) for s in report.next] == [
        ("pooling", Verdict.act),
        ("queue", Verdict.act),
        ("indexes", Verdict.watch),
    ]
    assert report.at == "at the pooling inflection point: database: x: x seen"


def test_all_ok_reaches_no_inflection_point_and_counts_what_could_not_run() -> None:
    report = verdict(
        [finding(Verdict.ok, None), unreachable("cache", "cache", "refused")],
        checked_at="2026-01-01T00:00:00+00:00",
    )
    assert report.next == []
    assert report.at == "no inflection point in what could be checked (1 check could not run)"


def test_an_unreachable_finding_names_the_component_and_the_reason() -> None:
    f = unreachable("queue", "queue", "Connection refused")
    assert (f.verdict, f.summary) == (
        Verdict.unreachable,
        "could not check: queue unreachable: Connection refused",
    )


def test_a_report_validates_against_the_schema_and_renders_as_markdown() -> None:
    report = verdict(
        [finding(Verdict.act, "indexes", "a|b"), unreachable("app", "app", "timed out")],
        checked_at="2026-01-01T00:00:00+00:00",
    )
    jsonschema.validate(to_dict(report), SCHEMA)
    assert "| database | a\\|b | **act** |" in to_markdown(report)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"db": "mysql://x/y"}, "--db 'mysql://x/y': expected a URL starting postgresql://"),
        ({"cache": "http://x"}, "--cache 'http://x': expected a URL starting redis://"),
        ({"replicas": ("x",)}, "--replica 'x': expected a URL starting postgresql://"),
        ({"app_url": "x"}, "--app-url 'x': expected a URL starting http://"),
        ({"app": Path("/no/such/dir")}, "--app /no/such/dir: no such file or directory"),
        ({}, "nothing to check: give --dir, or --db/--cache/--queue/--app-url"),
    ],
)
def test_targets_reject_bad_input_naming_the_option(options: dict, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        Targets(**options)
    assert str(raised.value) == message


def test_a_filter_gives_equality_columns_then_range_columns() -> None:
    scan = SeqScan(
        "public",
        "clicks",
        "((clicks.clicked_at >= $3) AND (clicks.link_id = $1) AND ((clicks.slug)::text = $2))",
        10.0,
    )
    assert scan.columns() == (["link_id", "slug"], ["clicked_at"])


def test_metrics_are_summed_by_name_and_the_app_hit_rate_needs_enough_lookups() -> None:
    text = (
        "# HELP rung_cache_hits_total x\n"
        'rung_cache_hits_total{a="1"} 900.0\n'
        "rung_cache_misses_total 100\n"
        'rung_db_pool_waiting{node="primary"} 2\nrung_db_pool_waiting{node="r"} 1\n'
    )
    samples = parse(text)
    assert samples == {
        "rung_cache_hits_total": 900.0,
        "rung_cache_misses_total": 100.0,
        "rung_db_pool_waiting": 3.0,
    }
    assert app_hit_rate(samples) == 0.9
    assert app_hit_rate({"rung_cache_hits_total": 5.0}) is None
