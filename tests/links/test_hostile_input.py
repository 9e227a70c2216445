"""schemathesis against /openapi.json of a real uvicorn process: whatever it sends, no
answer is a 5xx, every status is documented, and every body fits its documented schema."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from rung.stack import ports
from rung.testing import RungStack, wait_until
from rung_links.settings import Settings
from tests.links.support import PASSWORD, forget, settings_on

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip
EXAMPLES = 30  # per operation and mode: bounded, and derandomized so a run is repeatable


def environment(settings: Settings) -> dict[str, str]:
    """What `rung up --instances N` gives an app instance."""
    return {
        **os.environ,
        "RUNG_PRIMARY_URL": settings.primary_url,
        "RUNG_REPLICA_URLS": ",".join(settings.replica_urls),
        "RUNG_CACHE_URL": settings.cache_url,
        "RUNG_QUEUE_URL": settings.queue_url,
        "RUNG_SECRET": settings.secret,
        "RUNG_INSTANCE": settings.instance,
        "RUNG_LINKS_NAMESPACE": settings.namespace,
        "RUNG_LINKS_STREAM": settings.stream,
        "RUNG_LINKS_JOBS": "0",
    }


@pytest.fixture
def server(rung_stack: RungStack, links_database: str) -> Iterator[str]:
    """`uvicorn rung_links.app:app` as `rung up` runs it, on a free port outside the
    ephemeral range; its base URL."""
    settings = settings_on(rung_stack, links_database)
    port = ports.pick()
    argv = [sys.executable, "-m", "uvicorn", "rung_links.app:app", "--host", "127.0.0.1",
            "--port", str(port), "--no-access-log"]  # fmt: skip
    process = subprocess.Popen(argv, env=environment(settings), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{base}/readyz") or process.poll() is not None, 20.0)
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        yield base
    finally:
        process.terminate()
        process.communicate(timeout=20)
        forget(settings)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _session(base: str) -> str:
    """A logged-in session cookie, with one link ('docs') to aim at."""
    with httpx.Client(base_url=base) as client:
        body = {"email": "fuzz@example.com", "password": PASSWORD}
        client.post("/api/signup", json=body)
        assert client.post("/api/login", json=body).status_code == 200
        client.post("/api/links", json={"target_url": "https://example.com", "slug": "docs"})
        return f"rung_session={client.cookies['rung_session']}"


def _fuzz(operation: Any, mode: GenerationMode, base: str, headers: dict[str, str]) -> None:
    """Up to EXAMPLES cases of `operation` in `mode`, each sent and checked."""
    checks = CHECKS + ([negative_data_rejection] if mode == GenerationMode.NEGATIVE else [])

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base, headers=headers, checks=checks,
                               allow_redirects=False, timeout=10)  # fmt: skip

    check()


def test_no_input_gets_a_5xx_or_an_undocumented_answer(server: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    cookie = _session(server)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        # Logged in, except for logout, which would end the session for every later call.
        headers = {} if operation.path == "/api/logout" else {"cookie": cookie}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, server, headers)
            except Unsatisfiable:  # nothing in its schema can be violated (no parameters)
                assert mode == GenerationMode.NEGATIVE
            except (Exception, BaseExceptionGroup) as e:  # try every operation, report all
                failures.append(f"{operation.method.upper()} {operation.path} [{mode.value}]: {e}")
    assert not failures, "\n\n".join(failures)
