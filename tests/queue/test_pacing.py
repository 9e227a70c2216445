"""The pacer: rate cap and AIMD arithmetic (pure logic)."""

import pytest

from rung.queue import pacing


def test_unpaced_takes_whole_batches() -> None:
    pacer = pacing.Pacer(max_rate=None, target_latency=None, batch_size=1000)
    assert pacer.batch(1000) == 1000
    assert pacer.rate is None


def test_a_rate_cap_takes_a_tenth_of_a_second_of_rows_at_a_time() -> None:
    pacer = pacing.Pacer(max_rate=2000.0, target_latency=None, batch_size=1000)
    assert pacer.batch(1000) == 200
    assert pacing.Pacer(max_rate=5.0, target_latency=None, batch_size=1000).batch(1000) == 1


def test_without_a_target_latency_the_rate_never_moves() -> None:
    pacer = pacing.Pacer(max_rate=2000.0, target_latency=None, batch_size=1000)
    pacer.observe(10.0)
    pacer.failed()
    assert pacer.rate == 2000.0


def test_aimd_adds_a_step_per_good_batch_and_halves_on_a_slow_one() -> None:
    pacer = pacing.Pacer(max_rate=None, target_latency=0.1, batch_size=1000)
    assert pacer.rate == 10_000.0
    pacer.observe(0.05)
    assert pacer.rate == 10_100.0
    pacer.observe(0.5)
    assert pacer.rate == 10_100.0 * pacing.DECREASE
    for _ in range(100):
        pacer.failed()
    assert pacer.rate == pacing.FLOOR


def test_aimd_never_passes_max_rate() -> None:
    pacer = pacing.Pacer(max_rate=3000.0, target_latency=0.1, batch_size=1000)
    for _ in range(50):
        pacer.observe(0.01)
    assert pacer.rate == 3000.0


@pytest.mark.parametrize("kwargs", [{"max_rate": 0.0}, {"target_latency": -1.0}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    settings: dict[str, float | None] = {"max_rate": None, "target_latency": None, **kwargs}
    with pytest.raises(ValueError):
        pacing.Pacer(**settings, batch_size=10)  # type: ignore[arg-type]
