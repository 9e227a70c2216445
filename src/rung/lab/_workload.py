"""The lab's traffic: redirects and stats views over a Zipf key distribution, and link writes.

    mix = Mix(links=20_000, zipf_s=1.1, redirect=0.90, stats=0.08, cookie=session_cookie)
    kind, raw = mix.next()        # ("redirect", b"GET /r/lab-3 HTTP/1.1\\r\\n...")

Requests come pre-encoded (the load generator sends bytes), and draws come from a seeded
generator in batches, so two runs send the same sequence and a draw costs next to nothing.
A write (`POST /api/links`, the rest of the mix) needs a logged-in session's cookie.
"""

from __future__ import annotations

import itertools
import random

from rung.lab._seed import cumulative_weights, slug

_BATCH = 4096
_HEAD = "Host: rung-lab\r\nUser-Agent: rung-lab\r\n"


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\n{_HEAD}\r\n".encode()


def post_json(path: str, body: bytes, cookie: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\n{_HEAD}Cookie: {cookie}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Mix:
    """Draws the next request of the workload (see the module docstring)."""

    def __init__(
        self,
        *,
        links: int,
        zipf_s: float,
        redirect: float,
        stats: float,
        cookie: str | None,
        rng_seed: int = 7,
    ) -> None:
        if not (redirect >= 0 and stats >= 0 and redirect + stats <= 1):
            raise ValueError("redirect and stats are shares from 0 to 1, together at most 1")
        if cookie is None and redirect + stats < 1:
            raise ValueError("writes need a session cookie")
        self.redirect = redirect
        self.stats = stats
        self.cookie = cookie
        self._rng = random.Random(rng_seed)
        self._weights = cumulative_weights(links, zipf_s)
        self._ranks: list[int] = []
        self._redirects = [get(f"/r/{slug(r)}") for r in range(1, links + 1)]
        self._writes = itertools.count(1)

    def next(self) -> tuple[str, bytes]:
        if not self._ranks:
            self._ranks = self._rng.choices(
                range(len(self._weights)), cum_weights=self._weights, k=_BATCH
            )
        rank = self._ranks.pop()
        draw = self._rng.random()
        if draw < self.redirect:
            return "redirect", self._redirects[rank]
        if draw < self.redirect + self.stats:
            return "stats", get(f"/api/links/{slug(rank + 1)}/stats")
        assert self.cookie is not None
        body = b'{"target_url":"https://example.com/new/%d"}' % next(self._writes)
        return "write", post_json("/api/links", body, self.cookie)
