"""Instance checks: the HAProxy backends' states (the stack's stats socket, as `rung status`
reads them) and `rung lint`'s findings on the app's source, summarised.

    finding = await check_balancer(Path(".rung/haproxy.sock"), timeout=5.0)
    finding = await check_lint(Path("app/"))
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from pathlib import Path

from rung.doctor._model import Finding, Verdict
from rung.stack._haproxy import Backend, parse_stat
from rung.state.lint import lint_paths


async def check_balancer(path: Path, *, timeout: float) -> Finding:
    backends = await asyncio.to_thread(_backends, path, timeout)
    evidence: dict[str, int | float | str | bool | None] = {
        b.name: f"{b.status} ({b.check})" for b in backends
    }
    down = [b for b in backends if not b.up]
    if not backends:
        return Finding("instances", "load balancer", Verdict.act,
                       "HAProxy has no app instance", "start instances: rung up --instances N",
                       evidence, rung="stateless")  # fmt: skip
    if down:
        names = ", ".join(f"{b.name} is {b.status} ({b.check}: {b.detail})" for b in down)
        return Finding("instances", "load balancer", Verdict.act,
                       f"{len(down)} of {len(backends)} instances take no traffic: {names}",
                       "read those instances' logs (rung status shows where); their /readyz "
                       "must answer 200", evidence, rung="stateless")  # fmt: skip
    return Finding(
        "instances",
        "load balancer",
        Verdict.ok,
        f"all {len(backends)} instances are UP",
        "nothing",
        evidence,
    )


def _backends(path: Path, timeout: float) -> list[Backend]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)  # a hung HAProxy: each connect and read is bounded
        client.connect(str(path))
        client.sendall(b"show stat\n")
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
    return parse_stat(b"".join(chunks).decode())


async def check_lint(path: Path) -> Finding:
    findings = await asyncio.to_thread(lint_paths, [path])
    rules = Counter(f.rule for f in findings)
    evidence: dict[str, int | float | str | bool | None] = {"findings": len(findings), **rules}
    if not findings:
        return Finding(
            "instances",
            "statefulness (rung lint)",
            Verdict.ok,
            f"no statefulness trap in {path}",
            "nothing",
            evidence,
        )
    first = findings[0]
    return Finding(
        "instances", "statefulness (rung lint)", Verdict.act,
        f"{len(findings)} traps that break a second instance, e.g. {first.path}:{first.line} "
        f"{first.rule}: {first.message}",
        f"run `rung lint {path}` and apply each finding's fix before adding instances",
        evidence, rung="stateless",
    )  # fmt: skip
