"""Every numeric option of Queue, Drain and HandlerSink is checked at construction: NaN,
infinity and negative values are a ValueError naming the option (no Redis needed)."""

import math
from collections.abc import Callable
from typing import Any

import pytest

import rung
from rung.testing import MemoryBroker

URL = "redis://127.0.0.1:1/0"  # never connected to: construction does not connect


def queue(**options: Any) -> rung.Queue:
    return rung.Queue(URL, stream="s", **options)


async def _noop(event: dict[str, Any]) -> None: ...


def drain(**options: Any) -> rung.Drain:
    return rung.Drain(queue(), rung.HandlerSink(_noop), **options)


MAKERS: dict[str, Callable[..., object]] = {
    "max_depth": queue, "timeout": queue, "dedupe_window": queue,
    "batch_size": drain, "max_wait": drain, "max_rate": drain, "target_latency": drain,
    "max_deliveries": drain, "claim_idle": drain,
    "concurrency": lambda **o: rung.HandlerSink(_noop, **o),
}  # fmt: skip


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1, -0.5, 0])
@pytest.mark.parametrize("option", sorted(MAKERS))
def test_bad_numeric_options_raise_value_error_naming_the_option(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        MAKERS[option](**{option: value})


def test_claim_idle_may_not_outlast_the_queues_dedupe_window() -> None:
    with pytest.raises(ValueError, match="claim_idle"):
        rung.Drain(queue(dedupe_window=10.0), rung.HandlerSink(_noop), claim_idle=11.0)


def test_the_defaults_and_none_for_the_optional_ones_are_accepted() -> None:
    d = drain(max_rate=None, target_latency=None)
    assert (d.batch_size, d.max_wait, d.max_deliveries, d.claim_idle) == (1000, 0.05, 5, 5.0)
    assert (d.queue.max_depth, d.queue.timeout, d.queue.dedupe_window) == (1_000_000, 1.0, 60.0)


def test_a_queue_over_a_broker_takes_its_stream_and_dedupe_window() -> None:
    broker = MemoryBroker(stream="clicks", dedupe_window=30.0)
    q = rung.Queue(broker=broker, max_depth=10)
    assert (q.broker, q.stream, q.dedupe_window, q.max_depth, q.timeout) == (
        broker, "clicks", 30.0, 10, None)  # fmt: skip
    with pytest.raises(ValueError, match="claim_idle"):
        rung.Drain(q, rung.HandlerSink(_noop), claim_idle=31.0)


@pytest.mark.parametrize(
    "option", [{"url": URL}, {"stream": "s"}, {"timeout": 1.0}, {"dedupe_window": 60.0}]
)
def test_a_queue_over_a_broker_refuses_the_redis_options(option: dict[str, Any]) -> None:
    """They belong to the broker: given here they would silently do nothing."""
    with pytest.raises(ValueError, match=next(iter(option))):
        rung.Queue(broker=MemoryBroker(), **option)


def test_a_queue_needs_a_url_or_a_broker_and_a_broker_must_be_one() -> None:
    with pytest.raises(ValueError, match="url, or broker="):
        rung.Queue(stream="s")
    with pytest.raises(ValueError, match="broker="):
        rung.Queue(MemoryBroker(), stream="s")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="broker must be a rung"):
        rung.Queue(broker=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported queue URL"):
        rung.Queue("sqs://clicks", stream="s")
