"""The circuit breaker (pure logic)."""

import time

from rung.cache import breaker

Breaker = breaker.Breaker


def test_a_closed_breaker_lets_every_call_through() -> None:
    breaker = Breaker(cooldown=10.0)
    assert all(breaker.allow() for _ in range(100))


def test_after_a_failure_no_call_goes_through_until_the_cooldown_ends() -> None:
    breaker = Breaker(cooldown=10.0)
    breaker.failure()
    assert not any(breaker.allow() for _ in range(100))
    assert not breaker.closed


def test_after_the_cooldown_one_probe_goes_through_and_its_success_closes() -> None:
    breaker = Breaker(cooldown=0.01)
    breaker.failure()
    deadline = time.monotonic() + 5
    while not breaker.allow():
        assert time.monotonic() < deadline
    assert not breaker.allow()  # only the one probe
    breaker.success()
    assert breaker.closed
    assert breaker.allow()
