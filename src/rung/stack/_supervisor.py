"""The local stack's supervisor: start components in order, stop them in reverse, report.

stack = Stack(".rung")
stack.up(replicas=1, instances=2, workers=1)   # returns once every component answers
stack.status()                # per component: alive, answers, replication lag, backends
stack.down(purge=True)

The order: the servers, then the drain workers, then the app instances, HAProxy last; `down`
stops HAProxy first (no new requests), then the instances, the workers and the servers.
Instances start together and stop together, and so do workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rung.errors import ComponentFailed, StackError
from rung.stack import _ports as ports
from rung.stack import _proc as proc
from rung.stack._component import Component, Layout
from rung.stack._haproxy import HAProxy
from rung.stack._pgbouncer import PgBouncer
from rung.stack._postgres import Primary, Replica
from rung.stack._redis import Redis
from rung.stack._service import App, DrainWorker, Service, ServiceProcess
from rung.stack._stackfile import Record, StackFile

START_TIMEOUT = 30.0  # seconds a component may take to answer
STOP_TIMEOUT = 15.0  # seconds before a component that ignores its stop signal is killed
_TOGETHER = ("app", "drain")  # kinds whose components start and stop as one group


def default_dir() -> Path:
    """`$RUNG_DIR`, else `.rung` in the working directory."""
    return Path(os.environ.get("RUNG_DIR") or ".rung")


def plan(*, replicas: int, instances: int = 0, workers: int = 0) -> list[str]:
    """The component names of a stack, in start order."""
    return [
        "primary",
        *(f"replica{i}" for i in range(1, replicas + 1)),
        "pgbouncer",
        "cache",
        "queue",
        *(f"drain{i}" for i in range(1, workers + 1)),
        *(f"app{i}" for i in range(1, instances + 1)),
        *(["haproxy"] if instances else []),
    ]


def groups(names: list[str]) -> list[list[str]]:
    """`names` cut into the groups started (or stopped) at once: neighbouring app instances
    form one, neighbouring drain workers another, every other component is alone."""
    cut: list[list[str]] = []
    for name in names:
        kind = component_class(name).kind
        if cut and kind in _TOGETHER and component_class(cut[-1][0]).kind == kind:
            cut[-1].append(name)
        else:
            cut.append([name])
    return cut


def component_class(name: str) -> type[Component]:
    if name == "primary":
        return Primary
    if name.startswith("replica"):
        return Replica
    if name == "pgbouncer":
        return PgBouncer
    if name in ("cache", "queue"):
        return Redis
    if name == "haproxy":
        return HAProxy
    if name.startswith("app") and name[3:].isdigit():
        return App
    if name.startswith("drain") and name[5:].isdigit():
        return DrainWorker
    raise StackError(f"unknown component '{name}'")


@dataclass
class UpResult:
    """What `up` did: the stack file, whether it was already running, what it (re)started."""

    stack: StackFile
    already_running: bool
    started: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Stack:
    """A local stack of real servers in one directory (default `$RUNG_DIR` or `.rung`)."""

    def __init__(self, dir: Path | str | None = None) -> None:
        self.dir = Path(dir).absolute() if dir is not None else default_dir().absolute()

    @property
    def file(self) -> Path:
        return self.dir / "stack.json"

    def load(self) -> StackFile | None:
        """The stack file, or None when no stack was ever started here."""
        return StackFile.load(self.file)

    def running(self) -> StackFile | None:
        """The stack file when at least one component is alive, else None."""
        record = self.load()
        if record is None or not any(_alive(c) for c in record.components):
            return None
        return record

    # --- lifecycle ---------------------------------------------------------------------------

    def up(
        self,
        *,
        replicas: int = 1,
        instances: int = 0,
        workers: int = 0,
        app: str | None = None,
        drain: str | None = None,
        on_start: Callable[[str], None] | None = None,
    ) -> UpResult:
        """Start every component and return once each answers (an app instance: `/healthz`
        is 200; a drain worker: it talks to the queue Redis; HAProxy: every instance is UP).
        A running stack is left as is, except that components found dead are started again
        on their ports. `app` and `drain` (MODULE:NAME) default to what stack.json holds,
        else `rung_links.app:app` and `rung_links.drain:make`."""
        for option, count in (("replicas", replicas), ("instances", instances),
                              ("workers", workers)):  # fmt: skip
            if count < 0:
                raise StackError(f"--{option} must be 0 or more, not {count}")
        began = time.monotonic()
        with self._locked():
            record = self.load()
            if record is not None and any(_alive(c) for c in record.components):
                dead = [c.name for c in record.components if not _alive(c)]
                for group in groups(dead):
                    self._start(record, group, on_start)
                self._rebalanced(record, dead)
                return UpResult(record, True, dead, time.monotonic() - began)
            previous = record.service if record is not None else Service()
            service = Service(app=app or previous.app, drain=drain or previous.drain)
            names = plan(replicas=replicas, instances=instances, workers=workers)
            record = self._fresh_record(record, names, service)
            started: list[str] = []
            try:
                for group in groups(names):
                    self._start(record, group, on_start)
                    started += group
            except BaseException:
                self._stop_all(record)  # the ones that failed included
                raise
            return UpResult(record, False, started, time.monotonic() - began)

    def down(self, *, purge: bool = False) -> list[str]:
        """Stop every component this stack started; `purge` also removes its files.
        Returns the names of the components that were running."""
        with self._locked():
            record = self.load()
            stopped: list[str] = []
            if record is not None:
                stopped = [c.name for c in reversed(record.components) if _alive(c)]
                self._stop_all(record)
        if purge:
            self._purge(record)
        return stopped

    def start(self, *names: str) -> None:
        """Start stopped components again, together, on the ports they had; an app instance
        is back once HAProxy has it UP again."""
        with self._locked():
            record = self._require(*names)
            for group in groups(list(names)):
                self._start(record, group, None)
            self._rebalanced(record, list(names))

    def stop(self, *names: str) -> None:
        """Stop components (those of one kind together); their ports and data are kept for
        `start`."""
        with self._locked():
            record = self._require(*names)
            for group in groups(list(names)):
                self._stop(record, group)

    def configure(self, env: Mapping[str, str]) -> None:
        """Set the environment the app instances and drain workers get over the stack's,
        from their next start (`stop` then `start` them): how `rung lab` climbs the ladder.

            stack.configure({"RUNG_LINKS_CACHE": "off"}); stack.stop("app1"); stack.start("app1")
        """
        with self._locked():
            record = self._require()
            record.service = dataclasses.replace(record.service, env=dict(env))
            record.save(self.file)  # rung: ignore[RUNG201] (stack.json, by the CLI)

    def routed(self) -> list[str]:
        """The app instances HAProxy sends requests to now (UP after a check that passed)."""
        record = self._require()
        if record.get("haproxy") is None:
            return []
        haproxy = self._component(record, "haproxy")
        assert isinstance(haproxy, HAProxy)
        return [b.name for b in haproxy.backends() if b.up]

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Send `sig` to component `name` (SIGSTOP/SIGCONT to make it hang and come back);
        a component that is not running is a StackError."""
        entry = self._require().get(name)
        if entry is None or entry.proc is None or not _alive(entry):
            raise StackError(f"component '{name}' is not running in {self.file}")
        os.kill(entry.proc.pid, sig)

    def status(self) -> list[dict[str, Any]]:
        """Each component with `healthy` (alive and answering) and what its health adds."""
        record = self._require()
        report = []
        for c in record.components:
            entry: dict[str, Any] = {
                "name": c.name, "kind": c.kind, "pid": c.pid, "port": c.port, "url": c.url,
                "log": c.log, "alive": _alive(c), "answers": False,
            }  # fmt: skip
            if entry["alive"]:
                component = self._component(record, c.name)
                entry["answers"] = component.answers()
                if entry["answers"]:
                    try:
                        entry.update(component.health())
                    except (ComponentFailed, OSError) as e:
                        entry["error"] = str(e)
            entry["healthy"] = bool(entry["answers"]) and entry.get("state", "streaming") in (
                "streaming", "",
            ) and "error" not in entry  # fmt: skip
            entry["status"] = (
                "healthy" if entry["healthy"] else ("down" if not entry["alive"] else "unhealthy")
            )
            report.append(entry)
        return report

    # --- internals ---------------------------------------------------------------------------

    def _require(self, *names: str) -> StackFile:
        """The stack file, which must have each of `names`."""
        record = self.load()
        if record is None:
            raise StackError(f"no stack in {self.dir}: start one with `rung up --dir {self.dir}`")
        for name in names:
            if record.get(name) is None:
                raise StackError(f"no component '{name}' in {self.file}")
        return record

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / ".lock").open("w") as lock:  # rung: ignore[RUNG201]
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _layout(self, record: StackFile) -> Layout:
        return Layout(self.dir, Path(record.server_root), proc.server_user())

    def _component(self, record: StackFile, name: str) -> Component:
        component = _make(name, self._layout(record), record.ports(), record.service)
        entry = record.get(name)
        component.proc = entry.proc if entry is not None else None
        return component

    def _fresh_record(self, old: StackFile | None, names: list[str], service: Service) -> StackFile:
        """A stack file for a new start: earlier ports reused where they are free."""
        user = proc.server_user()
        server_root = _server_root(self.dir, user, old)
        record = StackFile(dir=str(self.dir), server_root=str(server_root), service=service)
        layout = Layout(self.dir, server_root, user)
        port_map: dict[str, int] = {}
        for name in names:
            if component_class(name).listens:
                previous = old.get(name) if old is not None else None
                port_map[name] = ports.pick(
                    prefer=previous.port if previous and previous.port else None,
                    taken=port_map.values(),
                )
        for name in names:
            component = _make(name, layout, port_map, service)
            record.put(
                Record(name, component.kind, component.port, str(component.log), component.url)
            )
        return record

    def _start(
        self, record: StackFile, names: list[str], on_start: Callable[[str], None] | None
    ) -> None:
        """Start `names` (one component, or a group of instances or workers) at once, then
        wait until each answers."""
        spawned: list[tuple[Component, proc.Proc]] = []
        for name in names:
            entry = record.get(name)
            assert entry is not None
            if _alive(entry):
                continue
            if on_start is not None:
                on_start(name)
            component = self._component(record, name)
            if component.listens and not ports.is_free(component.port):
                raise ComponentFailed(name, f"port {component.port} is already in use")
            component.prepare()
            started = proc.spawn(component.argv(), log=component.log, env=component.env())
            component.proc = started
            entry.pid, entry.started = started.pid, started.started
            record.save(self.file)  # rung: ignore[RUNG201] (stack.json, by the CLI)
            spawned.append((component, started))
        deadline = time.monotonic() + START_TIMEOUT
        for component, started in spawned:
            while not component.answers():
                if not proc.alive(started):
                    raise ComponentFailed(
                        component.name, "exited while starting", proc.tail(component.log)
                    )
                if time.monotonic() > deadline:
                    raise ComponentFailed(
                        component.name,
                        f"did not answer within {START_TIMEOUT:.0f}s",
                        proc.tail(component.log),
                    )
                time.sleep(0.02)
            component.settle()

    def _rebalanced(self, record: StackFile, restarted: list[str]) -> None:
        """After app instances came back, return once HAProxy has them UP again."""
        balancer = record.get("haproxy")
        if balancer is None or not _alive(balancer) or "haproxy" in restarted:
            return  # a HAProxy just started has settled already
        if any(component_class(name).kind == "app" for name in restarted):
            running = [c.name for c in record.components if c.kind == "app" and _alive(c)]
            haproxy = self._component(record, "haproxy")
            assert isinstance(haproxy, HAProxy)
            haproxy.settle(running)

    def _stop_all(self, record: StackFile) -> None:
        """Stop every component, in reverse start order: HAProxy first, the servers last."""
        for group in groups([c.name for c in reversed(record.components)]):
            self._stop(record, group)

    def _stop(self, record: StackFile, names: list[str]) -> None:
        """Stop `names` (one component, or a group of the same kind) at once."""
        entries = [e for e in map(record.get, names) if e is not None]
        running = [e.proc for e in entries if e.proc is not None]
        if running:
            sig = component_class(entries[0].name).stop_signal
            proc.stop_all(running, sig=sig, timeout=STOP_TIMEOUT)
        for entry in entries:
            entry.pid = entry.started = None
        if entries:
            record.save(self.file)  # rung: ignore[RUNG201] (stack.json, by the CLI)

    def _purge(self, record: StackFile | None) -> None:
        if record is not None and Path(record.server_root) != self.dir / "servers":
            shutil.rmtree(record.server_root, ignore_errors=True)
        if self.file.exists() or (self.dir / ".lock").exists():
            shutil.rmtree(self.dir, ignore_errors=True)


def _make(name: str, layout: Layout, port_map: dict[str, int], service: Service) -> Component:
    cls = component_class(name)
    if issubclass(cls, ServiceProcess):
        return cls(name, layout, port_map, service=service)
    return cls(name, layout, port_map)


def _alive(record: Record) -> bool:
    running = record.proc
    return running is not None and proc.alive(running)


def _server_root(dir: Path, user: proc.User, old: StackFile | None) -> Path:
    """Where the server user's files go: `dir/servers` if that user can reach it, else /var/tmp."""
    if old is not None and Path(old.server_root).is_dir():
        return Path(old.server_root)
    candidate = dir / "servers"
    candidate.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != user.uid:
        os.chown(candidate, user.uid, user.gid)
        reachable = subprocess.run(user.wrap(["test", "-w", str(candidate)])).returncode == 0
        if not reachable:
            candidate.rmdir()
            digest = hashlib.sha256(str(dir).encode()).hexdigest()[:12]
            candidate = Path("/var/tmp") / f"rung-{digest}"
            candidate.mkdir(mode=0o700, exist_ok=True)
            os.chown(candidate, user.uid, user.gid)
    return candidate
