import socket

from rung.stack import ports


def test_picked_ports_are_outside_the_ephemeral_range() -> None:
    """A picked port can never be handed out as some client's source port."""
    low, high = ports.ephemeral_range()
    picked = [ports.pick() for _ in range(50)]
    assert all(not (low <= p <= high) for p in picked)
    assert all(p not in (5432, 6379) for p in picked)


def test_pick_prefers_the_given_port_when_free() -> None:
    """A stack restarted keeps its ports where it can."""
    port = ports.pick()
    assert port == ports.pick(prefer=port)


def test_pick_skips_a_preferred_port_in_use_and_taken_ports() -> None:
    """A busy preferred port is replaced; ports already taken by the plan are not reused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        assert not ports.is_free(busy)
        assert ports.pick(prefer=busy) != busy
    free = ports.pick()
    assert ports.pick(prefer=free, taken={free}) != free
