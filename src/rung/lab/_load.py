"""An open-loop HTTP/1.1 load generator, and the search for the highest rate that meets a p99.

    run = await load.run("http://127.0.0.1:8080", mix.next, schedule=[(5, 200), (3, 2000)])
    run.percentile(99), run.errors(), run.achieved()

`rung lab` offers the service fixed arrival rates with `run` and finds, with `search`, the
highest rate whose p99 latency meets the objective. Arrivals are open-loop (they follow the
schedule however slowly the server answers) and each latency counts from the request's
*scheduled* start, so a stall shows in full in every request scheduled during it instead of
hiding as requests never sent (coordinated omission). The loop's timers wake in whole
milliseconds (epoll), so an arrival may go out up to 1 ms late, and that counts too.

It is cheap so that it can share a 2-core machine with what it measures: one timer drives the
schedule, connections are asyncio Protocols fed by callbacks (no task per request), and a
response is parsed only as far as its framing needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

Request = bytes  # a complete, pre-encoded HTTP/1.1 request (keep-alive)

_EPS = 1e-9  # slack when counting arrivals, so 0.1 * 30 arrivals is 3, not 2
_MAX_HEAD = 64 * 1024  # bytes of a head (or a chunk-size line) before the response is malformed


@dataclass(frozen=True, slots=True)
class Sample:
    """One request's outcome. `latency` counts from `scheduled` (seconds since the run
    began) to the complete response or the failure; `status` 0 is no response at all."""

    kind: str
    scheduled: float
    latency: float
    status: int


def _served(sample: Sample) -> bool:
    return 0 < sample.status < 500  # a 4xx is the service answering


@dataclass
class Run:
    """What `run` measured: `Run.percentile(99, "redirect")`, `Run.timeline(0.25)`."""

    samples: list[Sample]
    seconds: float  # wall seconds from the first schedule to the last completion
    cpu_seconds: float  # this process's CPU during the run
    offered: float  # requests scheduled per second of schedule

    def ok(self, kind: str | None = None) -> list[Sample]:
        """Samples the service answered (status below 500)."""
        return [s for s in self.samples if _served(s) and (kind is None or s.kind == kind)]

    def errors(self, kind: str | None = None) -> int:
        """Requests with no answer (status 0) or a 5xx."""
        return sum(1 for s in self.samples if not _served(s) and (kind is None or s.kind == kind))

    def achieved(self) -> float:
        """Answered requests per second of schedule: the offered rate times the share served."""
        if not self.samples:
            return 0.0
        return self.offered * len(self.ok()) / len(self.samples)

    def percentile(self, q: float, kind: str | None = None) -> float:
        """Latency in seconds at percentile `q` (0 to 100) of the answered requests; nan if none."""
        return _percentile(sorted(s.latency for s in self.ok(kind)), q)

    def cpu(self) -> float:
        """The generator's own CPU share: 0.3 is 30% of one core."""
        return self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0

    def timeline(self, bucket: float) -> list[dict[str, Any]]:
        """One row per `bucket` seconds of scheduled time: `{"t", "count", "errors", "p50",
        "p99", "max"}`, latencies in seconds (None where nothing was answered). Rows are
        plain dicts so that a caller can add its own columns (the lab adds queue depth)."""
        if not (bucket > 0 and math.isfinite(bucket)):
            raise ValueError(f"bucket must be a positive number of seconds, not {bucket!r}")
        if not self.samples:
            return []
        groups: list[list[Sample]] = [
            [] for _ in range(int(max(s.scheduled for s in self.samples) // bucket) + 1)
        ]
        for sample in self.samples:
            groups[int(sample.scheduled // bucket)].append(sample)
        rows: list[dict[str, Any]] = []
        for i, group in enumerate(groups):
            served = sorted(s.latency for s in group if _served(s))
            rows.append(
                {
                    "t": round(i * bucket, 6),
                    "count": len(group),
                    "errors": len(group) - len(served),
                    "p50": _percentile(served, 50) if served else None,
                    "p99": _percentile(served, 99) if served else None,
                    "max": served[-1] if served else None,
                }
            )
        return rows


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be from 0 to 100, not {q!r}")
    if not ordered:
        return math.nan
    position = q / 100 * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def arrivals(schedule: Sequence[tuple[float, float]]) -> list[float]:
    """Each arrival's time in seconds from the start: `[(0.5, 4), (0.5, 2)]` is
    `[0, 0.25, 0.5]`. Fixed intervals within a segment, and a fractional arrival carried
    into the next segment, so one second at 200/s is exactly 200 arrivals."""
    times: list[float] = []
    start = 0.0  # the segment's start
    due = 0.0  # arrivals due before it, fractional
    for duration, rate in schedule:
        if not (duration >= 0 and rate >= 0 and math.isfinite(duration * rate)):
            raise ValueError(f"schedule: ({duration!r}, {rate!r}) is not (seconds, per second)")
        end = due + duration * rate
        k = math.ceil(due - _EPS)
        while k < end - _EPS:
            times.append(start + (k - due) / rate)
            k += 1
        start += duration
        due = end
    return times


# --- one response -------------------------------------------------------------------------

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER, _EOF, _DONE = range(7)


def _field(head: bytes, name: bytes) -> bytes | None:
    """The value of the header `name` (given as b"\\r\\nname:") in a lower-cased head."""
    at = head.find(name)
    if at < 0:
        return None
    end = head.find(b"\r\n", at + len(name))
    return head[at + len(name) : end if end >= 0 else len(head)].strip()


class _Response:
    """Reads one response's framing: the status, then Content-Length bytes, chunks, or bytes
    until EOF. `feed` says when it is complete; `close` whether the connection must go."""

    __slots__ = ("buffer", "close", "no_body", "remaining", "state", "status")

    def __init__(self) -> None:
        self.reset(no_body=False)

    def reset(self, *, no_body: bool) -> None:
        self.state = _HEAD
        self.buffer = b""  # an incomplete head or line, kept for the next feed
        self.status = 0
        self.remaining = 0  # body or chunk bytes still to come (a chunk's with its CRLF)
        self.close = False
        self.no_body = no_body  # the answer to a HEAD

    def feed(self, data: bytes) -> bool:
        """Whether `data` completes the response; ValueError if the bytes are not HTTP/1.x."""
        if self.buffer:
            data, self.buffer = self.buffer + data, b""
        pos, size = 0, len(data)
        while True:
            state = self.state
            if state in (_LENGTH, _CHUNK_DATA):
                if size - pos < self.remaining:
                    self.remaining -= size - pos
                    return False
                pos += self.remaining
                self.remaining = 0
                self.state = _DONE if state == _LENGTH else _CHUNK_SIZE
            elif state == _HEAD:
                end = data.find(b"\r\n\r\n", pos)
                if end < 0:
                    return self._keep(data, pos)
                self._head(data[pos:end])
                pos = end + 4
            elif state == _CHUNK_SIZE:
                end = data.find(b"\r\n", pos)
                if end < 0:
                    return self._keep(data, pos)
                chunk = int(data[pos:end].split(b";", 1)[0], 16)
                if chunk < 0:
                    raise ValueError(f"a chunk of {chunk} bytes")
                pos = end + 2
                if chunk:
                    self.remaining = chunk + 2  # the data and its CRLF
                    self.state = _CHUNK_DATA
                else:
                    self.state = _TRAILER
            elif state == _TRAILER:
                if data.startswith(b"\r\n", pos):
                    pos += 2
                else:
                    end = data.find(b"\r\n\r\n", pos)
                    if end < 0:
                        return self._keep(data, pos)
                    pos = end + 4
                self.state = _DONE
            elif state == _EOF:
                return False
            else:
                # One request at a time, so bytes past the response put the stream out of step.
                self.close = self.close or pos < size
                return True

    def eof(self) -> bool:
        """Whether the connection's end completes the response (a body read to EOF)."""
        if self.state == _EOF:
            self.state = _DONE
            return True
        return False

    def _keep(self, data: bytes, pos: int) -> bool:
        if len(data) - pos > _MAX_HEAD:
            raise ValueError(f"no end of line in {_MAX_HEAD} bytes")
        self.buffer = data[pos:]
        return False

    def _head(self, head: bytes) -> None:
        if not head.startswith(b"HTTP/1."):
            raise ValueError(f"not an HTTP/1.x response: {head[:40]!r}")
        status = int(head[9:12])
        if status < 200:
            if status < 100:
                raise ValueError(f"status {status}")
            return  # an interim response (100 Continue): the real one follows
        self.status = status
        head = head.lower()
        connection = _field(head, b"\r\nconnection:")
        if head[7:8] == b"0":  # HTTP/1.0 closes unless told otherwise
            self.close = connection is None or b"keep-alive" not in connection
        else:
            self.close = connection is not None and b"close" in connection
        length = _field(head, b"\r\ncontent-length:")
        if self.no_body or status in (204, 304):
            self.state = _DONE
        elif b"chunked" in (_field(head, b"\r\ntransfer-encoding:") or b""):
            self.state = _CHUNK_SIZE
        elif length is not None:
            self.remaining = int(length)
            if self.remaining < 0:
                raise ValueError(f"Content-Length {self.remaining}")
            self.state = _LENGTH
        else:
            self.state = _EOF
            self.close = True


# --- connections and the schedule ---------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request in flight; busy while `timer` is set."""

    __slots__ = ("kind", "load", "response", "scheduled", "timer", "transport")

    transport: asyncio.Transport

    def __init__(self, load: _Load) -> None:
        self.load = load
        self.response = _Response()
        self.kind = ""
        self.scheduled = 0.0
        self.timer: asyncio.TimerHandle | None = None  # the request's deadline

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.load.alive.add(self)

    def send(self, kind: str, scheduled: float, raw: Request) -> None:
        load = self.load
        self.kind = kind
        self.scheduled = scheduled
        self.response.reset(no_body=raw.startswith(b"HEAD "))
        self.timer = load.loop.call_at(load.begin + scheduled + load.timeout, self._expire)
        self.transport.write(raw)

    def data_received(self, data: bytes) -> None:
        if self.timer is None:
            self.transport.abort()  # bytes nobody asked for: the stream is out of step
            return
        try:
            done = self.response.feed(data)
        except ValueError:
            self._fail()
            return
        if done:
            self._finish()

    def eof_received(self) -> bool | None:
        if self.timer is not None:
            if self.response.eof():
                self._finish()
            else:
                self._fail()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:  # a reset or a close mid-response
            self._fail()
        self.load.lost(self)

    def _finish(self) -> None:
        assert self.timer is not None
        self.timer.cancel()
        self.timer = None
        self.load.record(self.kind, self.scheduled, self.response.status)
        if self.response.close:
            self.transport.close()
        else:
            self.load.release(self)

    def _fail(self) -> None:
        assert self.timer is not None
        self.timer.cancel()
        self.timer = None
        self.load.record(self.kind, self.scheduled, 0)
        self.transport.abort()

    def _expire(self) -> None:
        self.timer = None
        self.load.record(self.kind, self.scheduled, 0, latency=self.load.timeout)
        self.transport.abort()


_Pending = tuple[str, float, Request]  # kind, scheduled, raw: a request waiting for a connection


class _Load:
    """One run: the schedule's timer, the connections, the requests waiting for one."""

    def __init__(
        self,
        host: str,
        port: int,
        next_request: Callable[[], tuple[str, Request]],
        times: list[float],
        *,
        connections: int,
        timeout: float,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port = host, port
        self.next_request = next_request
        self.times = times
        self.connections = connections
        self.timeout = timeout
        self.begin = self.last = self.loop.time()
        self.next = 0  # the next arrival's index in `times`
        self.samples: list[Sample] = []
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.conns: set[_Connection] = set()  # open and ours to use
        self.alive: set[_Connection] = set()  # every transport not yet lost, to close at the end
        self.idle: list[_Connection] = []  # a stack: the warmest connection first
        self.opening = 0
        self.connecting: set[asyncio.Task[None]] = set()
        self.waiting: deque[_Pending] = deque()
        self.ticker: asyncio.TimerHandle | None = None
        self.sweeper: asyncio.TimerHandle | None = None  # set whenever `waiting` is not empty
        self.closing = False
        self.closed: asyncio.Future[None] | None = None

    def start(self) -> None:
        self.begin = self.last = self.loop.time()
        self._tick()

    def _tick(self) -> None:
        """Launch every arrival that is due (all at once when behind), then sleep until the
        next: times come from the start, so lateness never accumulates into drift."""
        self.ticker = None
        now = self.loop.time()
        times, begin = self.times, self.begin
        try:
            while self.next < len(times):
                scheduled = times[self.next]
                if begin + scheduled > now:
                    self.ticker = self.loop.call_at(begin + scheduled, self._tick)
                    return
                self.next += 1
                kind, raw = self.next_request()
                self._dispatch(kind, scheduled, raw)
        except Exception as error:  # the caller's next_request: surface it from run()
            if not self.done.done():
                self.done.set_exception(error)

    def _dispatch(self, kind: str, scheduled: float, raw: Request) -> None:
        if self.idle:
            self.idle.pop().send(kind, scheduled, raw)
        elif self.opening + len(self.conns) < self.connections:
            self._open(kind, scheduled, raw)
        else:
            self.waiting.append((kind, scheduled, raw))
            if self.sweeper is None:
                self._sweep_at(self.waiting[0])

    def record(
        self, kind: str, scheduled: float, status: int, *, latency: float | None = None
    ) -> None:
        """One request's outcome, its latency counted from its schedule until now (a failure's
        at most the timeout) unless given."""
        now = self.loop.time()
        if latency is None:
            latency = now - self.begin - scheduled
            if status == 0:
                latency = min(latency, self.timeout)
        self.samples.append(Sample(kind, scheduled, latency, status))
        self.last = now
        if len(self.samples) == len(self.times) and not self.done.done():
            self.done.set_result(None)

    def release(self, conn: _Connection) -> None:
        """A connection is free again: the oldest waiting request takes it."""
        while self.waiting and not self.closing:
            pending = self.waiting.popleft()
            if not self._expired(pending):
                conn.send(*pending)
                return
        self.idle.append(conn)

    def lost(self, conn: _Connection) -> None:
        self.alive.discard(conn)
        if conn in self.conns:
            self.conns.discard(conn)
            if conn in self.idle:
                self.idle.remove(conn)
        if self.closing:
            if not self.alive and self.closed is not None and not self.closed.done():
                self.closed.set_result(None)
            return
        self._replace()

    def _replace(self) -> None:
        """Open connections for waiting requests while under the limit."""
        while self.waiting and not self.closing:
            if self.opening + len(self.conns) >= self.connections:
                return
            pending = self.waiting.popleft()
            if not self._expired(pending):
                self._open(*pending)

    def _expired(self, pending: _Pending) -> bool:
        kind, scheduled, _ = pending
        if self.begin + scheduled + self.timeout > self.loop.time():
            return False
        self.record(kind, scheduled, 0, latency=self.timeout)
        return True

    def _sweep_at(self, pending: _Pending) -> None:
        when = self.begin + pending[1] + self.timeout
        self.sweeper = self.loop.call_at(when, self._sweep)

    def _sweep(self) -> None:
        """Time out the requests that waited for a connection until their deadline."""
        self.sweeper = None
        while self.waiting and self._expired(self.waiting[0]):
            self.waiting.popleft()
        if self.waiting:
            self._sweep_at(self.waiting[0])

    def _open(self, kind: str, scheduled: float, raw: Request) -> None:
        self.opening += 1
        task = self.loop.create_task(self._connect(kind, scheduled, raw))
        self.connecting.add(task)
        task.add_done_callback(self.connecting.discard)

    async def _connect(self, kind: str, scheduled: float, raw: Request) -> None:
        conn: _Connection | None = None
        timed_out = False
        try:
            async with asyncio.timeout_at(self.begin + scheduled + self.timeout):
                _, conn = await self.loop.create_connection(
                    partial(_Connection, self), self.host, self.port
                )
        except TimeoutError:
            timed_out = True
        except OSError:  # refused, unreachable
            pass
        finally:
            self.opening -= 1
        if conn is None or conn.transport.is_closing():
            self.record(kind, scheduled, 0, latency=self.timeout if timed_out else None)
            self._replace()
            return
        self.conns.add(conn)
        conn.send(kind, scheduled, raw)

    async def close(self) -> None:
        """Stop the schedule, close every connection, and wait until each one is lost."""
        self.closing = True
        for handle in (self.ticker, self.sweeper):
            if handle is not None:
                handle.cancel()
        tasks = list(self.connecting)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in list(self.alive):
            if conn.timer is not None:
                conn.timer.cancel()
                conn.timer = None
            conn.transport.abort()
        if self.alive:
            self.closed = self.loop.create_future()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):  # connection_lost is one loop turn away
                    await self.closed


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"url must be http://host[:port], not {url!r}")
    return parts.hostname, parts.port or 80


async def run(
    url: str,
    next_request: Callable[[], tuple[str, Request]],
    *,
    schedule: Sequence[tuple[float, float]],
    connections: int = 512,
    timeout: float = 2.0,  # noqa: ASYNC109 (each request's bound, not the call's)
) -> Run:
    """Send requests at the schedule's rates (segments of `(seconds, per second)`), each
    drawn by `next_request()` as `(kind, raw bytes)`, over at most `connections` keep-alive
    connections; a request unanswered `timeout` seconds after its scheduled start is status
    0. Returns within about the schedule's length plus `timeout`, every connection closed."""
    host, port = _address(url)
    if connections < 1:
        raise ValueError(f"connections must be at least 1, not {connections!r}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    times = arrivals(schedule)
    duration = sum(seconds for seconds, _ in schedule)
    offered = len(times) / duration if duration > 0 else 0.0
    if not times:
        return Run(samples=[], seconds=0.0, cpu_seconds=0.0, offered=offered)
    load = _Load(host, port, next_request, times, connections=connections, timeout=timeout)
    cpu = time.process_time()
    try:
        load.start()
        await load.done
        cpu = time.process_time() - cpu
    finally:
        await load.close()
    return Run(
        samples=sorted(load.samples, key=lambda s: s.scheduled),
        seconds=load.last - load.begin,
        cpu_seconds=cpu,
        offered=offered,
    )


# --- the search ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One measured rate of a search."""

    rate: float  # offered requests per second
    run: Run
    ok: bool  # met the objective


def meets(run: Run, *, p99: float, error_budget: float = 0.01) -> bool:
    """Whether a run meets the objective: p99 latency (all kinds) within `p99` seconds,
    errors within `error_budget` of the requests, and 95% of the offered rate answered."""
    if not run.samples:
        return False
    return (
        run.percentile(99) <= p99  # nan (nothing answered) fails
        and run.errors() <= error_budget * len(run.samples)
        and run.achieved() >= 0.95 * run.offered
    )


async def search(
    measure: Callable[[float], Awaitable[Run]],
    *,
    start: float,
    p99: float,
    factor: float = 1.6,
    steps: int = 6,
    floor: float = 1.0,
    error_budget: float = 0.01,
    confirm: bool = False,
    on_step: Callable[[Step], None] | None = None,
) -> list[Step]:
    """The steps measured looking for the highest rate that meets the objective: up by
    `factor` from `start` while steps pass, then the geometric mean of the best passing and
    the lowest failing rate; down by `factor` (to `floor` at least) while none has passed.
    At most `steps` measurements; `sustainable(steps)` is the answer.

    With `confirm`, a step that fails while its median is within a quarter of `p99` is
    measured once more at the same rate, and only a second failure counts: a service that
    is not saturated fails its p99 only through a stall (a checkpoint, a collection), and
    one stall would otherwise cap the search below the knee."""
    for name, value in (("start", start), ("p99", p99), ("floor", floor)):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive finite number, not {value!r}")
    if not (factor > 1 and math.isfinite(factor)):
        raise ValueError(f"factor must be a finite number above 1, not {factor!r}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps!r}")
    if not 0 <= error_budget <= 1:
        raise ValueError(f"error_budget must be from 0 to 1, not {error_budget!r}")
    measured: list[Step] = []
    passed: float | None = None  # the highest rate that met the objective
    failed: float | None = None  # the lowest that did not
    rate = start
    retested = False  # the step before was this rate's first failure, measured again
    while len(measured) < steps:
        outcome = await measure(rate)
        step = Step(rate=rate, run=outcome, ok=meets(outcome, p99=p99, error_budget=error_budget))
        measured.append(step)
        if on_step is not None:
            on_step(step)
        if confirm and not step.ok and not retested and outcome.percentile(50) <= p99 / 4:
            retested = True
            continue
        retested = False
        if step.ok:
            passed = rate if passed is None else max(passed, rate)
        else:
            failed = rate if failed is None else min(failed, rate)
        if failed is None:
            rate *= factor
        elif passed is not None:
            rate = math.sqrt(passed * failed)
        elif rate <= floor:
            break
        else:
            rate = max(rate / factor, floor)
    return measured


def sustainable(steps: list[Step]) -> Step | None:
    """The passing step with the highest rate; None if none passed."""
    return max((s for s in steps if s.ok), key=lambda s: s.rate, default=None)
