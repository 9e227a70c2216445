"""The lab's traffic: seeded, Zipf-distributed, pre-encoded requests in the configured mix."""

from __future__ import annotations

from collections import Counter

import pytest

from rung.lab import workload


def draws(mix: workload.Mix, n: int) -> list[tuple[str, bytes]]:
    return [mix.next() for _ in range(n)]


def test_two_mixes_with_one_seed_send_the_same_requests() -> None:
    one = workload.Mix(links=500, zipf_s=1.1, redirect=0.9, stats=0.08, cookie="session=x")
    two = workload.Mix(links=500, zipf_s=1.1, redirect=0.9, stats=0.08, cookie="session=x")
    assert draws(one, 3000) == draws(two, 3000)


def test_the_mix_and_the_zipf_ranks_show_in_the_requests() -> None:
    mix = workload.Mix(links=1000, zipf_s=1.1, redirect=0.9, stats=0.08, cookie="session=x")
    sent = draws(mix, 20_000)
    kinds = Counter(kind for kind, _ in sent)
    assert 0.88 < kinds["redirect"] / 20_000 < 0.92
    assert 0.06 < kinds["stats"] / 20_000 < 0.10
    paths = Counter(raw.split(b" ")[1] for kind, raw in sent if kind == "redirect")
    top = [path for path, _ in paths.most_common(3)]
    assert top == [b"/r/lab-1", b"/r/lab-2", b"/r/lab-3"]


def test_a_write_is_a_complete_post_with_the_session_cookie() -> None:
    mix = workload.Mix(links=10, zipf_s=1.0, redirect=0.0, stats=0.0, cookie="session=abc")
    kind, raw = mix.next()
    head, body = raw.split(b"\r\n\r\n")
    assert kind == "write"
    assert head.startswith(b"POST /api/links HTTP/1.1\r\n")
    assert b"Cookie: session=abc" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert body.startswith(b'{"target_url":"https://example.com/new/')


def test_writes_without_a_session_and_shares_past_one_are_refused() -> None:
    with pytest.raises(ValueError, match="writes need a session cookie"):
        workload.Mix(links=10, zipf_s=1.0, redirect=0.5, stats=0.0, cookie=None)
    with pytest.raises(ValueError, match="together at most 1"):
        workload.Mix(links=10, zipf_s=1.0, redirect=0.9, stats=0.2, cookie="c")
