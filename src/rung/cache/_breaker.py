"""A circuit breaker: after a Redis failure, calls skip Redis for `cooldown` seconds
instead of each waiting for its own timeout; then one call probes, and its outcome
closes the breaker or opens it again.

    breaker = Breaker(cooldown=1.0)
    if breaker.allow():
        try:
            await redis.get(key)
        except RedisError:
            breaker.failure()
        else:
            breaker.success()
"""

from __future__ import annotations

import time


class Breaker:
    def __init__(self, *, cooldown: float) -> None:
        self.cooldown = cooldown
        self._open_until = 0.0  # 0.0: closed

    @property
    def closed(self) -> bool:
        return not self._open_until

    def allow(self) -> bool:
        """May this call use Redis? While open, no; once `cooldown` has passed, this one call
        may (the probe), and the next probe waits another `cooldown`."""
        if not self._open_until:
            return True
        now = time.monotonic()
        if now < self._open_until:
            return False
        self._open_until = now + self.cooldown
        return True

    def success(self) -> None:
        self._open_until = 0.0

    def failure(self) -> None:
        self._open_until = time.monotonic() + self.cooldown
