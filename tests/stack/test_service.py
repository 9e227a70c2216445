"""App instances behind HAProxy and drain workers, on a real stack of their own (one per
module), running tests/stack/fake_app.py rather than rung_links."""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
import redis.asyncio

import rung
from rung.errors import StackError
from rung.stack import Stack, StackFile, proc, service
from rung.testing import wait_until
from tests.helpers import poll
from tests.helpers import rung as rung_command
from tests.stack.fake_app import STREAM

REPO = Path(__file__).parent.parent.parent
APP = "tests.stack.fake_app:app"
DRAIN = "tests.stack.fake_app:make_drain"


@pytest.fixture(scope="module")
def system() -> Iterator[Stack]:
    """replica1, 1 drain worker, 2 app instances and HAProxy, for this module's tests."""
    workdir = Path(tempfile.mkdtemp(prefix="rung-service-"))
    workdir.chmod(0o755)
    stack = Stack(workdir / "stack")
    try:
        # A URL of another stack exported in the shell must not reach the instances.
        leak = {"RUNG_APP_URL": "http://127.0.0.1:1", "RUNG_POOLED_PRIMARY_URL": "postgresql://x"}
        with contextlib.chdir(REPO), mock.patch.dict(os.environ, leak):
            stack.up(replicas=1, instances=2, workers=1, app=APP, drain=DRAIN)
        yield stack
    finally:
        stack.down(purge=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _record(stack: Stack) -> StackFile:
    record = stack.load()
    assert record is not None
    return record


def _app_url(stack: Stack) -> str:
    url = _record(stack).urls().get("app_url")
    assert isinstance(url, str)
    return url


def _whoami(url: str, client: httpx.Client | None = None) -> dict[str, Any]:
    response = (client or httpx).get(f"{url}/whoami", timeout=5.0)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _backends(stack: Stack) -> dict[str, str]:
    haproxy = next(c for c in stack.status() if c["name"] == "haproxy")
    backends: dict[str, str] = haproxy.get("backends", {})
    return backends


def _status_json(stack: Stack) -> tuple[int, dict[str, Any]]:
    done = rung_command("status", "--dir", str(stack.dir), "--json")
    return done.returncode, json.loads(done.stdout)


def test_stack_json_has_app_url_and_each_component_with_its_kind(system: Stack) -> None:
    """Servers, then drain workers, then app instances, HAProxy last; app_url is HAProxy's;
    a drain worker has port 0; the targets are kept for a restart."""
    data = json.loads(system.file.read_text())
    components = [(c["name"], c["kind"]) for c in data["components"]]
    assert components == [
        ("primary", "postgres"), ("replica1", "postgres"), ("pgbouncer", "pgbouncer"),
        ("cache", "redis"), ("queue", "redis"), ("drain1", "drain"),
        ("app1", "app"), ("app2", "app"), ("haproxy", "haproxy"),
    ]  # fmt: skip
    by_name = {c["name"]: c for c in data["components"]}
    assert data["app_url"] == f"http://127.0.0.1:{by_name['haproxy']['port']}"
    assert (by_name["drain1"]["port"], by_name["drain1"]["url"]) == (0, "")
    assert all(isinstance(c["pid"], int) for c in data["components"])
    assert (data["service"]["app"], data["service"]["drain"]) == (APP, DRAIN)


def test_requests_through_app_url_take_turns_on_the_instances(system: Stack) -> None:
    """Round robin: consecutive requests alternate between app1 and app2, and the instance
    sees the client's address in X-Forwarded-For."""
    with httpx.Client() as client:
        answers = [_whoami(_app_url(system), client) for _ in range(6)]
    names = [a["instance"] for a in answers]
    assert {names[0], names[1]} == {"app1", "app2"}
    assert names == names[:2] * 3
    assert {a["forwarded_for"] for a in answers} == {"127.0.0.1"}


def test_every_instance_gets_the_stack_secret_and_the_pooled_urls(system: Stack) -> None:
    """DIR/secret is 64 hex digits, mode 0600, and both instances got it; the database URLs
    they got lead through PgBouncer; no other stack's URL leaked in from the shell."""
    path = system.dir / "secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    digest = hashlib.sha256(path.read_text().strip().encode()).hexdigest()
    urls = _record(system).urls()
    for name in ("app1", "app2"):
        entry = _record(system).get(name)
        assert entry is not None
        got = _whoami(entry.url)
        assert got["instance"] == name
        assert got["secret_sha256"] == digest
        assert got["primary_url"] == urls["pooled_primary_url"]
        assert got["replica_urls"] == ",".join(urls["pooled_replica_urls"])
        assert (got["cache_url"], got["queue_url"]) == (urls["cache_url"], urls["queue_url"])
        assert got["dir"] == str(system.dir)
        assert {"RUNG_APP_URL", "RUNG_POOLED_PRIMARY_URL"}.isdisjoint(got["rung_variables"])
        given = {"RUNG_PRIMARY_URL", "RUNG_REPLICA_URLS", "RUNG_CACHE_URL", "RUNG_QUEUE_URL",
                 "RUNG_SECRET", "RUNG_INSTANCE", "RUNG_DIR"}  # fmt: skip
        assert given <= set(got["rung_variables"])


async def test_the_drain_worker_drains_the_stack_queue(system: Stack) -> None:
    """An event put on the stack's queue is handled by drain1."""
    urls = _record(system).urls()
    marker = os.urandom(6).hex()
    async with rung.Queue(urls["queue_url"], stream=STREAM) as queue:
        await queue.put({"marker": marker})
    async with redis.asyncio.Redis.from_url(urls["cache_url"], decode_responses=True) as cache:

        async def drained() -> bool:
            return await cache.get(f"{STREAM}:{marker}") == "drain1"

        await poll(drained)


def test_status_shows_each_backend_up(system: Stack) -> None:
    """`rung status --json` has HAProxy's backends UP and every component healthy; the text
    table shows them too."""
    code, report = _status_json(system)
    assert code == 0, report
    by_name = {c["name"]: c for c in report["components"]}
    assert by_name["haproxy"]["backends"] == {"app1": "UP", "app2": "UP"}
    assert all(c["status"] == "healthy" for c in report["components"])
    assert report["app_url"] == _app_url(system)
    text = rung_command("status", "--dir", str(system.dir))
    assert "app1 UP, app2 UP" in text.stdout


def test_env_prints_the_app_url(system: Stack) -> None:
    done = rung_command("env", "--dir", str(system.dir))
    assert f"RUNG_APP_URL={_app_url(system)}" in done.stdout.splitlines()


def test_an_instance_whose_readyz_fails_gets_no_traffic(system: Stack) -> None:
    """HAProxy checks /readyz: app2 answering 503 is taken out; back at 200, it is back in."""
    unready = system.dir / "unready-app2"
    unready.touch()
    try:
        wait_until(lambda: _backends(system)["app2"] == "DOWN")
        with httpx.Client() as client:
            assert {_whoami(_app_url(system), client)["instance"] for _ in range(6)} == {"app1"}
    finally:
        unready.unlink()
    wait_until(lambda: _backends(system) == {"app1": "UP", "app2": "UP"})
    with httpx.Client() as client:
        assert {_whoami(_app_url(system), client)["instance"] for _ in range(4)} == {"app1", "app2"}


def test_a_killed_instance_is_taken_out_and_no_request_fails(system: Stack) -> None:
    """SIGKILL app1: requests right after it all succeed (retried on app2), HAProxy marks it
    DOWN, status says so; `rung up` starts it again and it takes traffic again."""
    system.signal("app1", signal.SIGKILL)
    with httpx.Client() as client:
        assert {_whoami(_app_url(system), client)["instance"] for _ in range(20)} == {"app2"}
        wait_until(lambda: _backends(system)["app1"] == "DOWN")
        assert {_whoami(_app_url(system), client)["instance"] for _ in range(4)} == {"app2"}
    code, report = _status_json(system)
    assert code == 1
    by_name = {c["name"]: c for c in report["components"]}
    assert by_name["app1"]["status"] == "down"
    assert by_name["haproxy"]["status"] == "unhealthy"
    assert "app1 is DOWN" in by_name["haproxy"]["error"]

    again = rung_command("up", "--dir", str(system.dir))
    assert again.returncode == 0, again.stderr
    assert "restarted app1" in again.stdout
    assert _backends(system) == {"app1": "UP", "app2": "UP"}  # up returned once it was UP
    with httpx.Client() as client:
        assert {_whoami(_app_url(system), client)["instance"] for _ in range(4)} == {"app1", "app2"}


def test_a_dead_instance_whose_port_was_taken_is_a_one_line_error(system: Stack) -> None:
    """`rung up` cannot restart app2 on its port while something else listens there."""
    entry = _record(system).get("app2")
    assert entry is not None and entry.proc is not None
    system.signal("app2", signal.SIGKILL)
    wait_until(lambda: not proc.alive(entry.proc))
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", entry.port))
        squatter.listen()
        failed = rung_command("up", "--dir", str(system.dir))
    assert failed.returncode == 2
    assert failed.stderr.splitlines()[-1] == f"rung: app2: port {entry.port} is already in use"
    assert "Traceback" not in failed.stderr
    again = rung_command("up", "--dir", str(system.dir))
    assert again.returncode == 0, again.stderr
    assert "restarted app2" in again.stdout


def test_down_stops_the_balancer_then_instances_then_workers_then_servers(system: Stack) -> None:
    """Each instance, as it stops, finds HAProxy gone and the servers up; the worker finds
    the instances gone; nothing is left running."""
    procs = [c.proc for c in _record(system).components if c.proc is not None]
    stopped = system.down()
    assert stopped == ["haproxy", "app2", "app1", "drain1", "queue", "cache", "pgbouncer",
                       "replica1", "primary"]  # fmt: skip
    assert not any(proc.alive(p) for p in procs)
    last_seen = {}
    for line in (system.dir / "stopped.log").read_text().splitlines():
        who, _, seen = line.partition(" saw ")
        last_seen[who] = set(seen.split())
    servers = {"primary", "replica1", "pgbouncer", "cache", "queue"}
    assert last_seen["app1"] == last_seen["app2"] == servers  # HAProxy gone, servers up
    assert last_seen["drain1"] == servers  # both instances gone too


# --- bad input, each on a throwaway directory -------------------------------------------------


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rung-service-bad-"))
    path.chmod(0o755)
    yield path
    Stack(path / "stack").down(purge=True)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("option", ["--instances", "--workers", "--replicas"])
def test_a_negative_count_is_one_line(option: str, workdir: Path) -> None:
    done = rung_command("up", "--dir", str(workdir / "stack"), option, "-1")
    assert done.returncode == 2
    assert done.stderr.strip() == f"rung: {option} must be 0 or more, not -1"


def test_a_target_that_is_not_module_colon_name_is_one_line(workdir: Path) -> None:
    done = rung_command("up", "--dir", str(workdir / "stack"), "--instances", "1", "--app", "x")
    assert done.returncode == 2
    assert done.stderr.strip() == "rung: --app must be MODULE:NAME (e.g. myapp.main:app), not 'x'"


def test_an_app_that_does_not_import_fails_the_up_and_stops_the_rest(workdir: Path) -> None:
    """uvicorn exits: the error names app1 and shows its log; the servers are stopped again."""
    d = workdir / "stack"
    done = rung_command("up", "--dir", str(d), "--replicas", "0", "--instances", "1",
                        "--app", "rung_no_such_module:app")  # fmt: skip
    assert done.returncode == 2
    assert "rung: app1: exited while starting" in done.stderr.splitlines()
    assert 'Could not import module "rung_no_such_module"' in done.stderr
    record = json.loads((d / "stack.json").read_text())
    assert [c["pid"] for c in record["components"]] == [None] * 6


def test_the_secret_is_made_once_and_refused_when_it_is_not_ours(tmp_path: Path) -> None:
    """secret() makes DIR/secret (0600) once and returns the same value after (making it
    0600 again if it was loosened); a file that does not hold 64 hex digits is an error, not
    silently replaced."""
    first = service.secret(tmp_path)
    assert len(first) == 64 and int(first, 16) >= 0
    assert service.secret(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    (tmp_path / "secret").chmod(0o644)
    assert service.secret(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    (tmp_path / "secret").write_text("hunter2\n")
    with pytest.raises(StackError, match="not a secret rung made"):
        service.secret(tmp_path)


def test_service_targets_must_be_module_colon_name() -> None:
    assert service.Service(app="a.b:c", drain="d:make").app == "a.b:c"
    with pytest.raises(StackError, match="--drain must be MODULE:NAME"):
        service.Service(drain="d.make")


def test_the_pytest_plugin_starts_instances_from_its_ini_options(tmp_path: Path) -> None:
    """rung_instances and rung_app reach the throwaway stack; rung_stack.app_url serves."""
    (tmp_path / "test_inner.py").write_text(
        "import httpx\n\n"
        "def test_app_url(rung_stack):\n"
        "    assert rung_stack.app_url is not None\n"
        "    body = httpx.get(rung_stack.app_url + '/whoami', timeout=5.0).json()\n"
        "    assert body['instance'] == 'app1'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RUNG_DIR"}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path),
            "-o", "rung_replicas=0", "-o", "rung_instances=1", "-o", f"rung_app={APP}"]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
