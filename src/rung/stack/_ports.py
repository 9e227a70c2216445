"""Free TCP ports for the stack's servers, chosen outside the kernel's ephemeral range.

A port in the ephemeral range can be taken as some client's *source* port between the moment
we find it free and the moment the server binds it; below the range that cannot happen.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Collection
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 20000  # stay clear of the well-known and registered service ports we might meet
_HIGHEST = 65535


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range, `(low, high)` inclusive."""
    try:
        low, high = (int(p) for p in _RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def candidate_ranges() -> list[range]:
    """Port ranges outside the ephemeral range, the one below it first (never empty)."""
    low, high = ephemeral_range()
    ranges = [range(_LOWEST, min(low, _HIGHEST + 1)), range(max(high + 1, _LOWEST), _HIGHEST + 1)]
    return [r for r in ranges if len(r) > 0] or [range(_LOWEST, _HIGHEST + 1)]


def is_free(port: int) -> bool:
    """True when no socket listens on (or is bound to) 127.0.0.1:`port`.

    SO_REUSEADDR, as every server of the stack sets it: connections of a stopped server that
    linger in TIME_WAIT do not keep it from starting again on its port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick(*, prefer: int | None = None, taken: Collection[int] = ()) -> int:
    """A free port: `prefer` when it is free, else a random one outside the ephemeral range.

    >>> port = pick(prefer=last_port, taken={primary_port})
    """
    if prefer is not None and prefer not in taken and is_free(prefer):
        return prefer
    pool = candidate_ranges()[0]
    for _ in range(1000):
        port = random.choice(pool)
        if port not in taken and is_free(port):
            return port
    raise OSError("could not find a free port outside the ephemeral range")
