"""The open-loop load generator against a tiny in-test server, its response framing, and the
throughput search against synthetic runs."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from rung.lab import load

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def paths(*cycle: str) -> Callable[[], tuple[str, bytes]]:
    """A `next_request` that sends the paths in turn, round and round."""
    sent = 0

    def next_request() -> tuple[str, bytes]:
        nonlocal sent
        path = cycle[sent % len(cycle)]
        sent += 1
        return path.strip("/"), request(path)

    return next_request


class Server:
    """A keep-alive HTTP/1.1 server whose request path says how to answer: /ok, /missing
    (404), /fail (503), /hold (until `release` is set), /chunked, /close (body to EOF),
    /close-length, /never, /reset (half a response, then the connection dropped)."""

    def __init__(self) -> None:
        self.requests = 0
        self.connections = 0  # ever accepted
        self.open = 0
        self.release = asyncio.Event()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        """Close once every client has hung up: `run` closes its connections, and each
        handler then ends by itself (3.11's streams log an error for a cancelled one)."""
        self._server.close()
        try:
            async with asyncio.timeout(2):
                await self.until(lambda: self.open == 0)
        except TimeoutError:  # a test failed with connections open
            for task in self._handlers:
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until `condition()` holds (checked whenever the counts change)."""
        if condition():
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((condition, future))
        await future

    def _changed(self) -> None:
        for condition, future in self._waiters:
            if not future.done() and condition():
                future.set_result(None)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        self.open += 1
        self._changed()
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                self._changed()
                if not await self._answer(head.split(b" ", 2)[1], reader, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.open -= 1
            self._changed()
            self._handlers.discard(task)

    async def _answer(
        self, path: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; whether the connection stays open."""
        if path == b"/ok":
            writer.write(OK)
        elif path == b"/missing":
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        elif path == b"/fail":
            writer.write(b"HTTP/1.1 503 Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
        elif path == b"/hold":
            if not await self._released(reader):
                return False
            writer.write(OK)
        elif path == b"/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for part in (b"5\r\nhello\r\n", b"6;x=1\r\n world\r\n", b"0\r\nX-End: 1\r\n\r\n"):
                await writer.drain()
                writer.write(part)
        elif path == b"/close":
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
            return False
        elif path == b"/close-length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye")
            return False
        elif path == b"/never":
            await reader.read()  # until the client gives up
            return False
        elif path == b"/reset":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            await writer.drain()
            writer.transport.abort()
            return False
        await writer.drain()
        return True

    async def _released(self, reader: asyncio.StreamReader) -> bool:
        """Wait for `release`; False if the client hung up first."""
        released = asyncio.ensure_future(self.release.wait())
        hung_up = asyncio.ensure_future(reader.read(1))  # no pipelining: only EOF comes
        await asyncio.wait({released, hung_up}, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (released, hung_up):
            waiter.cancel()
        await asyncio.gather(released, hung_up, return_exceptions=True)
        return self.release.is_set()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    server = Server()
    await server.start()
    yield server
    await server.stop()


# --- the schedule -------------------------------------------------------------------------


def test_arrivals_are_fixed_intervals_and_a_fraction_carries_into_the_next_segment() -> None:
    assert load.arrivals([(1, 4)]) == [0, 0.25, 0.5, 0.75]
    # 2.5 arrivals in the first segment: the third falls 0.05 s into the second.
    assert load.arrivals([(0.25, 10), (0.25, 10)]) == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    assert load.arrivals([(0.5, 0), (0.5, 4)]) == [0.5, 0.75]
    assert len(load.arrivals([(0.1, 30)] * 10)) == 30


def test_a_schedule_segment_must_be_seconds_and_a_rate() -> None:
    with pytest.raises(ValueError, match="schedule"):
        load.arrivals([(1, -5)])
    with pytest.raises(ValueError, match="schedule"):
        load.arrivals([(math.inf, 5)])


async def test_one_second_at_200_per_second_sends_exactly_200(server: Server) -> None:
    result = await load.run(server.url, paths("/ok"), schedule=[(1, 200)])
    assert [s.status for s in result.samples] == [200] * 200
    assert server.requests == 200
    assert result.offered == 200.0
    assert result.errors() == 0
    async with asyncio.timeout(5):
        await server.until(lambda: server.open == 0)  # every connection closed on return


async def test_a_mixed_schedule_schedules_each_segment_at_its_rate(server: Server) -> None:
    result = await load.run(server.url, paths("/ok"), schedule=[(0.5, 100), (0.5, 300)])
    scheduled = [s.scheduled for s in result.samples]
    assert 200 == len(scheduled) == server.requests
    assert sum(1 for t in scheduled if t < 0.5) == 50
    assert sum(1 for t in scheduled if 0.5 <= t < 1.0) == 150
    assert scheduled[50] == pytest.approx(0.5)
    assert scheduled[51] - scheduled[50] == pytest.approx(1 / 300)


# --- responses ----------------------------------------------------------------------------


def framed(raw: bytes, *, no_body: bool = False) -> tuple[int, bool, int] | None:
    """(status, close, bytes read) once a response fed one byte at a time is complete."""
    response = load._Response()
    response.reset(no_body=no_body)
    for i in range(len(raw)):
        if response.feed(raw[i : i + 1]):
            return response.status, response.close, i + 1
    return None


def test_a_response_is_framed_by_its_length_its_chunks_or_its_kind() -> None:
    chunked = (
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\nX-End: 1\r\n\r\n"
    )
    assert (201, False, len(chunked)) == framed(chunked)
    assert (200, False, len(OK)) == framed(OK)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    assert (200, False, len(head)) == framed(head + b"hello", no_body=True)
    no_content = b"HTTP/1.1 204 No Content\r\n\r\n"
    assert (204, False, len(no_content)) == framed(no_content)
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    assert (200, False, len(interim + OK)) == framed(interim + OK)


def test_a_response_that_asks_to_close_or_has_no_length_closes_its_connection() -> None:
    close = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: Close\r\n\r\nok"
    assert (200, True, len(close)) == framed(close)
    old = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert (200, True, len(old)) == framed(old)
    to_eof = load._Response()
    to_eof.reset(no_body=False)
    assert not to_eof.feed(b"HTTP/1.1 200 OK\r\n\r\nall of it")
    assert to_eof.eof()
    assert (to_eof.status, to_eof.close) == (200, True)


def test_bytes_that_are_not_http_are_malformed() -> None:
    with pytest.raises(ValueError):
        load._Response().feed(b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(ValueError):
        load._Response().feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")


async def test_chunked_and_closing_responses_parse_and_the_next_request_reconnects(
    server: Server,
) -> None:
    order = ("/chunked", "/ok", "/close", "/ok", "/close-length", "/ok")
    result = await load.run(server.url, paths(*order), schedule=[(0.06, 100)], connections=1)
    assert [s.status for s in result.samples] == [200] * 6
    assert [p.strip("/") for p in order] == [s.kind for s in result.samples]
    assert server.connections == 3  # a fresh connection after each close


async def test_a_4xx_is_served_and_a_5xx_is_an_error(server: Server) -> None:
    result = await load.run(server.url, paths("/ok", "/missing", "/fail"), schedule=[(0.3, 20)])
    assert [s.status for s in result.samples] == [200, 404, 503] * 2
    assert result.errors() == 2
    assert result.errors("fail") == 2
    assert result.errors("missing") == 0
    assert [s.kind for s in result.ok()] == ["ok", "missing"] * 2


async def test_a_reset_mid_response_is_status_0_and_the_next_request_works(
    server: Server,
) -> None:
    result = await load.run(server.url, paths("/reset", "/ok"), schedule=[(0.1, 20)], connections=1)
    assert [s.status for s in result.samples] == [0, 200]
    assert server.connections == 2


# --- every wait is bounded ----------------------------------------------------------------


async def test_a_server_that_never_answers_gives_status_0_at_the_timeout(server: Server) -> None:
    async with asyncio.timeout(5):  # a hang guard, not a measurement
        result = await load.run(server.url, paths("/never"), schedule=[(0.1, 50)], timeout=0.3)
        await server.until(lambda: server.open == 0)  # run closed every connection
    assert [(s.status, s.latency) for s in result.samples] == [(0, 0.3)] * 5
    assert result.errors() == 5
    assert math.isnan(result.percentile(99))


async def test_a_request_waiting_for_a_connection_times_out_too(server: Server) -> None:
    async with asyncio.timeout(5):
        result = await load.run(
            server.url, paths("/hold"), schedule=[(0.1, 50)], connections=1, timeout=0.3
        )
        await server.until(lambda: server.open == 0)
    assert [(s.status, s.latency) for s in result.samples] == [(0, 0.3)] * 5


async def test_a_refused_connection_is_status_0() -> None:
    with socket.socket() as sock:  # a port that nobody listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with asyncio.timeout(5):
        result = await load.run(f"http://127.0.0.1:{port}", paths("/ok"), schedule=[(0.1, 30)])
    assert [s.status for s in result.samples] == [0, 0, 0]


async def test_an_error_from_next_request_comes_out_of_run_and_closes_everything(
    server: Server,
) -> None:
    sent = 0

    def next_request() -> tuple[str, bytes]:
        nonlocal sent
        sent += 1
        if sent == 3:
            raise LookupError("no more links")
        return "hold", request("/hold")

    async with asyncio.timeout(5):
        with pytest.raises(LookupError):
            await load.run(server.url, next_request, schedule=[(1, 20)])
        await server.until(lambda: server.open == 0)
    assert sent == 3


# --- open loop ----------------------------------------------------------------------------


async def test_a_stall_shows_in_the_latency_of_every_request_scheduled_during_it(
    server: Server,
) -> None:
    """The server holds every answer until it has all 20 requests: an open loop sends them
    all anyway, and each latency runs from its schedule to the release, which came no
    earlier than the last request's schedule."""

    async def release_after_all() -> None:
        await server.until(lambda: server.requests >= 20)
        server.release.set()

    releaser = asyncio.create_task(release_after_all())
    async with asyncio.timeout(5):
        result = await load.run(server.url, paths("/hold"), schedule=[(0.2, 100)])
        await releaser
    samples = result.samples
    assert [s.status for s in samples] == [200] * 20
    last = samples[-1].scheduled
    assert last == pytest.approx(0.19)
    assert samples[0].latency >= last  # scheduled at 0, answered after the release
    assert all(s.scheduled + s.latency >= last for s in samples)


async def test_with_one_connection_every_request_queues_and_counts_its_wait(
    server: Server,
) -> None:
    """The first answer is held until all ten requests have been scheduled; the rest then
    go one at a time over the one connection, each latency counting its time in the queue."""
    drawn = 0
    all_drawn = asyncio.Event()

    def next_request() -> tuple[str, bytes]:
        nonlocal drawn
        drawn += 1
        if drawn == 10:
            all_drawn.set()
        return "hold", request("/hold")

    async def release_when_all_drawn() -> None:
        await all_drawn.wait()
        server.release.set()

    releaser = asyncio.create_task(release_when_all_drawn())
    async with asyncio.timeout(5):
        result = await load.run(server.url, next_request, schedule=[(0.1, 100)], connections=1)
        await releaser
    samples = result.samples
    assert [s.status for s in samples] == [200] * 10
    assert server.connections == 1
    done = [s.scheduled + s.latency for s in samples]
    assert sorted(done) == done  # first in, first answered
    last = samples[-1].scheduled
    assert all(s.scheduled + s.latency >= last for s in samples)


async def test_bad_options_are_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="url"):
        await load.run("https://127.0.0.1:1", paths("/ok"), schedule=[(1, 1)])
    with pytest.raises(ValueError, match="connections"):
        await load.run("http://127.0.0.1:1", paths("/ok"), schedule=[(1, 1)], connections=0)
    with pytest.raises(ValueError, match="timeout"):
        await load.run("http://127.0.0.1:1", paths("/ok"), schedule=[(1, 1)], timeout=0)


# --- a run's numbers ----------------------------------------------------------------------


def synthetic(*latencies: float, status: int = 200, kind: str = "redirect") -> list[load.Sample]:
    return [load.Sample(kind, i * 0.1, latency, status) for i, latency in enumerate(latencies)]


def test_percentiles_interpolate_over_answered_requests() -> None:
    run = load.Run(
        samples=synthetic(0.01, 0.02, 0.03, 0.04, 0.05) + synthetic(9.0, status=0),
        seconds=1.0,
        cpu_seconds=0.25,
        offered=6.0,
    )
    assert pytest.approx(run.percentile(50)) == 0.03
    assert pytest.approx(run.percentile(99)) == 0.0496
    assert run.percentile(100) == 0.05
    assert run.percentile(0) == 0.01
    assert pytest.approx(run.achieved()) == 5.0
    assert run.errors() == 1
    assert run.cpu() == 0.25
    assert math.isnan(run.percentile(99, "stats"))
    with pytest.raises(ValueError):
        run.percentile(101)


def test_the_timeline_buckets_by_scheduled_time() -> None:
    samples = [
        load.Sample("redirect", 0.0, 0.010, 200),
        load.Sample("redirect", 0.1, 0.030, 200),
        load.Sample("redirect", 0.3, 0.500, 0),
        load.Sample("redirect", 0.6, 0.020, 302),
    ]
    rows = load.Run(samples=samples, seconds=1.0, cpu_seconds=0.0, offered=4.0).timeline(0.25)
    assert [row["t"] for row in rows] == [0.0, 0.25, 0.5]
    assert [row["count"] for row in rows] == [2, 1, 1]
    assert [row["errors"] for row in rows] == [0, 1, 0]
    assert [row["max"] for row in rows] == [0.03, None, 0.02]
    assert rows[0]["p50"] == pytest.approx(0.02)


# --- the search ---------------------------------------------------------------------------


def capacity(limit: float) -> Callable[[float], asyncio.Future[load.Run]]:
    """A `measure` for a service that answers in 10 ms up to `limit` req/s and in 0.5 s past it."""

    async def measure(rate: float) -> load.Run:
        latency = 0.010 if rate <= limit else 0.5
        samples = [load.Sample("redirect", i / rate, latency, 200) for i in range(int(rate))]
        return load.Run(samples=samples, seconds=1.0, cpu_seconds=0.0, offered=rate)

    return measure  # type: ignore[return-value]


async def test_the_search_climbs_by_the_factor_then_bisects() -> None:
    seen: list[load.Step] = []
    steps = await load.search(capacity(1000), start=200, p99=0.1, on_step=seen.append)
    rates = [200, 320, 512, 819.2, 1310.72, math.sqrt(819.2 * 1310.72)]
    assert rates == pytest.approx([s.rate for s in steps])
    assert [s.ok for s in steps] == [True, True, True, True, False, False]
    assert seen == steps
    best = load.sustainable(steps)
    assert best is not None
    assert pytest.approx(best.rate) == 819.2


async def test_the_search_goes_down_until_a_rate_passes_then_bisects() -> None:
    steps = await load.search(capacity(1000), start=5000, p99=0.1, factor=2, steps=5)
    assert [5000, 2500, 1250, 625, math.sqrt(625 * 1250)] == pytest.approx([s.rate for s in steps])
    assert [s.ok for s in steps] == [False, False, False, True, True]
    best = load.sustainable(steps)
    assert best is not None
    assert math.sqrt(625 * 1250) == pytest.approx(best.rate)


async def test_the_search_stops_at_the_floor_and_then_nothing_is_sustainable() -> None:
    steps = await load.search(capacity(0), start=12, p99=0.1, factor=2, steps=10, floor=2)
    assert [s.rate for s in steps] == [12, 6, 3, 2]
    assert load.sustainable(steps) is None


async def test_the_search_never_measures_more_than_its_steps() -> None:
    for steps in (1, 2, 7):
        assert steps == len(await load.search(capacity(1e9), start=10, p99=0.1, steps=steps))


def stalled_once(limit: float, at: float) -> Callable[[float], asyncio.Future[load.Run]]:
    """`capacity(limit)`, except that the first run at rate `at` has one stall: 2 % of its
    requests answer in 0.5 s, the rest in 10 ms."""
    seen: set[float] = set()

    async def measure(rate: float) -> load.Run:
        if rate != at or at in seen:
            return await capacity(limit)(rate)
        seen.add(at)
        n = int(rate)
        slow = max(2, n // 50)
        samples = [
            load.Sample("redirect", i / rate, 0.5 if i < slow else 0.010, 200) for i in range(n)
        ]
        return load.Run(samples=samples, seconds=1.0, cpu_seconds=0.0, offered=rate)

    return measure  # type: ignore[return-value]


async def test_confirm_measures_a_stalled_step_again_and_the_search_goes_on() -> None:
    steps = await load.search(stalled_once(1000, 400), start=200, p99=0.1, factor=2, steps=5,
                              confirm=True)  # fmt: skip
    assert [(s.rate, s.ok) for s in steps] == [
        (200, True), (400, False), (400, True), (800, True), (1600, False)
    ]  # fmt: skip
    # The control: without confirm the stall caps the search below the knee.
    plain = await load.search(stalled_once(1000, 400), start=200, p99=0.1, factor=2, steps=5)
    low = math.sqrt(200 * 400)
    mid = math.sqrt(low * 400)
    rates = [200, 400, low, mid, math.sqrt(mid * 400)]
    assert [s.rate for s in plain] == pytest.approx(rates)
    assert [s.ok for s in plain] == [True, False, True, True, True]


async def test_confirm_takes_a_saturated_step_at_its_word() -> None:
    """Past the knee the median is slow too: no second look."""
    steps = await load.search(capacity(1000), start=800, p99=0.1, factor=2, steps=3,
                              confirm=True)  # fmt: skip
    assert [(s.rate, s.ok) for s in steps] == [
        (800, True),
        (1600, False),
        (math.sqrt(800 * 1600), False),
    ]


async def test_confirm_counts_a_second_failure() -> None:
    async def always_stalls(rate: float) -> load.Run:
        samples = [
            load.Sample("redirect", i / rate, 0.5 if i < 5 else 0.010, 200) for i in range(100)
        ]
        return load.Run(samples=samples, seconds=1.0, cpu_seconds=0.0, offered=rate)

    steps = await load.search(always_stalls, start=100, p99=0.1, factor=2, steps=4, confirm=True)  # type: ignore[arg-type]
    assert [(s.rate, s.ok) for s in steps] == [(100, False), (100, False), (50, False), (50, False)]


def test_a_run_meets_the_objective_only_within_latency_errors_and_rate() -> None:
    def run(latency: float, errors: int) -> load.Run:
        samples = synthetic(*[latency] * (100 - errors)) + synthetic(*[0.0] * errors, status=0)
        return load.Run(samples=samples, seconds=1.0, cpu_seconds=0.0, offered=100.0)

    assert load.meets(run(0.05, 1), p99=0.1)
    assert not load.meets(run(0.2, 0), p99=0.1)
    assert not load.meets(run(0.05, 2), p99=0.1)
    assert load.meets(run(0.05, 2), p99=0.1, error_budget=0.02)
    assert not load.meets(load.Run(samples=[], seconds=0.0, cpu_seconds=0.0, offered=0.0), p99=0.1)
