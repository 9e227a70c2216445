"""The `rung` command: the local stack and, as the rungs land, the lab, doctor and linter.

rung up --dir .rung --replicas 1
eval "$(rung env)"
rung down --purge

Every error is one line on stderr, `rung: <why>`, with exit code 2 (see `main`).
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import typer
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table

from rung import __version__
from rung.errors import ComponentFailed, RungError
from rung.queue import Queue
from rung.queue._runner import serve
from rung.stack import Stack, default_dir
from rung.state.lint import _reporters as reporters
from rung.state.lint import lint_paths

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="rung: read/write splitting, cache-aside, stateless instances and a queue-based "
    "load leveller, on a real local stack.",
)
console = Console()
err = Console(stderr=True)

DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="The stack's directory (default: $RUNG_DIR, else .rung)."),
]


def _stack(dir: Path | None) -> Stack:
    return Stack(dir if dir is not None else default_dir())


@app.command()
def up(
    dir: DirOption = None,
    replicas: Annotated[int, typer.Option(help="Streaming replicas.")] = 1,
    instances: Annotated[
        int, typer.Option(help="App instances (uvicorn) behind HAProxy; 0: no app, no HAProxy.")
    ] = 0,
    workers: Annotated[int, typer.Option(help="Drain workers (`rung drain`).")] = 0,
    app_target: Annotated[
        str | None,
        typer.Option("--app", metavar="MODULE:APP",
                     help="The ASGI app the instances serve (default: the stack's last, "
                     "else rung_links.app:app)."),
    ] = None,
    drain_target: Annotated[
        str | None,
        typer.Option("--drain", metavar="MODULE:FACTORY",
                     help="The factory the workers run (default: the stack's last, "
                     "else rung_links.drain:make)."),
    ] = None,
) -> None:  # fmt: skip
    """Start the stack and return once every component answers."""
    stack = _stack(dir)
    result = stack.up(
        replicas=replicas,
        instances=instances,
        workers=workers,
        app=app_target,
        drain=drain_target,
        on_start=lambda name: err.print(f"starting {name}…"),
    )
    if result.already_running and not result.started:
        console.print(f"a stack is already running in {stack.dir}; nothing changed")
    elif result.already_running:
        console.print(f"restarted {', '.join(result.started)} in {stack.dir}")
    else:
        console.print(f"stack up in {stack.dir} in {result.seconds:.1f}s")
    if result.already_running:
        kinds = [c.kind for c in result.stack.components]
        running = {"instances": kinds.count("app"), "workers": kinds.count("drain")}
        for option, wanted in (("instances", instances), ("workers", workers)):
            if wanted and wanted != running[option]:
                err.print(f"note: the running stack has {running[option]} {option}; "
                          f"`rung down` first to start it with --{option} {wanted}",
                          soft_wrap=True)  # fmt: skip
    _print_urls(result.stack.urls())


@app.command()
def status(
    dir: DirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each component: pid, port, health, replica lag and, for HAProxy, each app instance's
    state (UP/DOWN). Exits 1 unless all are healthy."""
    stack = _stack(dir)
    report = stack.status()
    healthy = all(c["healthy"] for c in report)
    if as_json:
        record = stack.load()
        urls = record.urls() if record else {}
        print(json.dumps({**urls, "healthy": healthy, "components": report}, indent=2))
    else:
        console.print(_status_table(report))
    raise typer.Exit(0 if healthy else 1)


@app.command()
def env(dir: DirOption = None) -> None:
    """RUNG_*_URL=... lines for `eval "$(rung env)"` (use `set -a` first to export them)."""
    record = _stack(dir).running()
    if record is None:
        raise RungError(f"no stack running in {_stack(dir).dir}: start one with `rung up`")
    for key, value in record.urls().items():
        print(f"RUNG_{key.upper()}={','.join(value) if isinstance(value, list) else value}")
    print(f"RUNG_DIR={record.dir}")


@app.command()
def down(
    dir: DirOption = None,
    purge: Annotated[bool, typer.Option("--purge", help="Also remove the directory.")] = False,
) -> None:
    """Stop everything the stack started; --purge also removes its files."""
    stack = _stack(dir)
    stopped = stack.down(purge=purge)
    if stopped:
        console.print(f"stopped {', '.join(stopped)}")
    else:
        console.print(f"nothing was running in {stack.dir}")
    if purge:
        console.print(f"removed {stack.dir}")


@app.command()
def drain(
    factory: Annotated[str, typer.Argument(metavar="MODULE:FACTORY", help="Returns a rung.Drain.")],
) -> None:
    """Run the Drain that FACTORY() returns until SIGTERM or SIGINT; the batch in flight
    is written and acknowledged before it exits."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stats = asyncio.run(serve(factory))
    err.print(f"drain stopped: {stats}", soft_wrap=True)


@app.command("replay-dead")
def replay_dead(
    stream: Annotated[str, typer.Argument(help="The queue's stream name.")],
    queue_url: Annotated[
        str | None, typer.Option("--queue", help="The queue Redis (default: the stack's).")
    ] = None,
    dir: DirOption = None,
) -> None:
    """Move the dead letters of STREAM back onto it (after fixing what failed them)."""
    if queue_url is None:
        record = _stack(dir).running()
        if record is None:
            raise RungError(f"no stack running in {_stack(dir).dir}: pass --queue URL")
        queue_url = record.urls()["queue_url"]

    async def replay() -> int:
        async with Queue(queue_url, stream=stream) as queue:
            return await queue.replay_dead()

    console.print(f"replayed {asyncio.run(replay())} dead letters onto {stream!r}")


class Format(enum.StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"


@app.command()
def lint(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="Files or directories.")],
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.text,
) -> None:
    """Find statefulness traps: module state changed at request time, local-disk caches,
    per-process caches and sessions, instance-bound timers. Exits 1 on findings."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise RungError(f"no such file or directory: {', '.join(missing)}")
    findings = lint_paths(paths)
    if format is Format.json:
        sys.stdout.write(reporters.json(findings))
    elif format is Format.sarif:
        sys.stdout.write(reporters.sarif(findings, version=__version__))
    else:
        sys.stdout.write(reporters.text(findings))
    raise typer.Exit(1 if findings else 0)


class DoctorFormat(enum.StrEnum):
    text = "text"
    json = "json"
    md = "md"


@app.command()
def doctor(
    dir: Annotated[
        Path | None,
        typer.Option("--dir", help="A running stack (default without URLs: $RUNG_DIR, else "
                     ".rung)."),
    ] = None,
    db: Annotated[str | None, typer.Option("--db", metavar="URL", help="The primary.")] = None,
    replica: Annotated[
        list[str] | None, typer.Option("--replica", metavar="URL", help="A replica (repeatable).")
    ] = None,
    cache: Annotated[
        str | None, typer.Option("--cache", metavar="URL", help="The cache Redis.")
    ] = None,
    queue: Annotated[
        str | None, typer.Option("--queue", metavar="URL", help="The queue Redis.")
    ] = None,
    app_url: Annotated[
        str | None, typer.Option("--app-url", metavar="URL", help="The app; its /metrics is read.")
    ] = None,
    stream: Annotated[
        list[str] | None,
        typer.Option("--stream", metavar="NAME", help="A stream to check (repeatable; default: "
                     "every stream on the queue Redis)."),
    ] = None,
    app_path: Annotated[
        Path | None,
        typer.Option("--app", metavar="PATH", help="The app's source, for `rung lint`."),
    ] = None,
    format: Annotated[
        DoctorFormat, typer.Option("--format", help="Output format.")
    ] = DoctorFormat.text,
    timeout: Annotated[
        float, typer.Option(help="Seconds each connection and query may take.")
    ] = 5.0,
) -> None:  # fmt: skip
    """Which inflection point the system has hit, and the rungs to take next: checks of the
    database, cache, queue, instances and app, each with its evidence, a verdict (ok, watch,
    act) and the next step. Exits 1 when a check says act or could not run."""
    from rung.doctor import Targets, Verdict, diagnose, to_json, to_markdown, to_text

    urls = (db, replica, cache, queue, app_url)
    streams = tuple(stream or ())
    if any(urls) and dir is not None:
        raise ValueError(
            "give --dir or URLs (--db, --replica, --cache, --queue, --app-url), not both"
        )
    if any(urls):
        targets = Targets(db=db, replicas=tuple(replica or ()), cache=cache, queue=queue,
                          app_url=app_url, streams=streams, app=app_path)  # fmt: skip
    else:
        targets = Targets.from_stack(dir if dir is not None else default_dir(), streams=streams,
                                     app=app_path)  # fmt: skip
    report = asyncio.run(diagnose(targets, timeout=timeout))
    if format is DoctorFormat.json:
        sys.stdout.write(to_json(report))
    elif format is DoctorFormat.md:
        sys.stdout.write(to_markdown(report))
    else:
        to_text(report, console)
    flagged = any(f.verdict in (Verdict.act, Verdict.unreachable) for f in report.findings)
    raise typer.Exit(1 if flagged else 0)


@app.command()
def lab(
    dir: Annotated[
        Path | None,
        typer.Option("--dir", help="A running stack to measure (default: start a throwaway "
                     "one). Its rung_links tables are replaced by the lab's data."),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Short steps (about 3 minutes).")] = False,
    out: Annotated[Path, typer.Option("--out", help="Where the report goes.")] = Path("rung-lab"),
    stages: Annotated[
        str | None,
        typer.Option("--stages", metavar="LIST", help="Comma-separated stages (default: all): "
                     "naive,indexes,pool,pgbouncer,replica,cache,instances,queue."),
    ] = None,
) -> None:  # fmt: skip
    """Climb the ladder on rung_links and measure what each rung buys; writes an HTML report
    with charts, PNGs, a markdown summary and results.json."""
    from rung.lab._console import lab as run_lab

    index = run_lab(dir=dir, quick=quick, out=out, stages_=stages, console=console)
    console.print(f"report: {index.absolute()}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Where the report goes.")] = Path("rung-demo"),
) -> None:
    """The main job: start a throwaway stack, climb the ladder quickly (`rung lab --quick`),
    print the report's path, take the stack down."""
    from rung.lab._console import lab as run_lab

    index = run_lab(dir=None, quick=True, out=out, stages_=None, console=console)
    console.print(f"report: {index.absolute()}")


def _status_table(report: list[dict[str, Any]]) -> Table:
    table = Table("component", "kind", "pid", "port", "status", "detail")
    for c in report:
        table.add_row(c["name"], c["kind"], str(c["pid"] or "-"), str(c["port"] or "-"),
                      "[green]healthy[/]" if c["healthy"] else f"[red]{c['status']}[/]",
                      _detail(c))  # fmt: skip
    return table


def _detail(c: dict[str, Any]) -> str:
    if c.get("role") == "replica":
        paused = " (replay paused)" if c.get("replay_paused") else ""
        return f"{c.get('state') or '?'}, lag {c.get('lag_s')}s / {c.get('lag_bytes')} B{paused}"
    if c["kind"] == "redis" and "maxmemory-policy" in c:
        return f"{c['maxmemory-policy']}, appendonly {c.get('appendonly')}"
    if c["kind"] == "haproxy" and "backends" in c:
        return ", ".join(f"{name} {state}" for name, state in c["backends"].items())
    return str(c.get("error", c.get("role", "")))


def _print_urls(urls: dict[str, Any]) -> None:
    for key, value in urls.items():
        console.print(f"  {key}: {', '.join(value) if isinstance(value, list) else value}")


# What a command raises for a cause outside rung's control, beside its own RungError: a bad
# value (a URL of the wrong scheme), the file system, and the drivers' errors where nothing
# wraps them (`rung drain` runs the user's own factory).
_ERRORS: tuple[type[Exception], ...] = (
    RungError, ValueError, OSError, RedisError,
    asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
)  # fmt: skip


def main() -> None:
    """Entry point: an error is one line on stderr, `rung: <why>`, and exit code 2, never a
    traceback; typer's usage errors keep typer's message and its exit code (2); Ctrl-C exits
    130 without a word. Anything else is a bug in rung and keeps its traceback."""
    try:
        app()
    except KeyboardInterrupt:  # typer maps one inside a command to 130 itself
        sys.exit(130)
    except Exception as e:
        if not _is_error(e):
            raise
        print(f"rung: {_one_line(e)}", file=sys.stderr)
        if isinstance(e, ComponentFailed) and e.log_tail:  # why a server did not start
            print(f"--- last lines of {e.name}'s log ---\n{e.log_tail}", file=sys.stderr)
        sys.exit(2)


def _is_error(e: BaseException) -> bool:
    if isinstance(e, BaseExceptionGroup) and not isinstance(e, RungError):
        return all(_is_error(inner) for inner in e.exceptions)
    return isinstance(e, _ERRORS)


def _one_line(e: BaseException) -> str:
    if isinstance(e, BaseExceptionGroup) and not isinstance(e, RungError):
        return "; ".join(_one_line(inner) for inner in e.exceptions)
    text = str(e) or type(e).__name__
    if not isinstance(e, RungError | ValueError | OSError):  # a driver's: name its class
        text = f"{type(e).__name__}: {text}"
    cause = e.__cause__
    if isinstance(e, RungError) and cause is not None and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return " ".join(text.split())
