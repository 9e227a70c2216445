"""The lab's report: results.json, four charts, summary.md and one self-contained index.html.

    index = write(results, Path("rung-lab"))  # rung-lab/index.html

index.html embeds its charts as data: URIs and carries a Content-Security-Policy that lets
it fetch nothing and run no script, so it opens the same from a laptop, a CI artifact or an
e-mail attachment. Every number the lab could not measure is drawn as "—".
"""

from __future__ import annotations

import base64
import html
import json
import math
import statistics
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.lab._claims import busiest

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

NONE = "—"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_NEEDS = "the lab's report needs matplotlib: pip install 'rung[lab]'"
_BLUE, _ORANGE, _GREEN, _RED, _GREY = "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#9a9a9a"
_NODES = [_BLUE, _GREEN, "#64b5cd", "#8172b3", _ORANGE, "#937860"]
COLUMNS = (
    "step", "stage", "throughput req/s", "p50 ms", "p99 ms", "max ms", "errors",
    "statements/s per node", "replica read share", "cache hit rate", "db reads per redirect",
    "stats query ms", "busiest box",
)  # fmt: skip
SPIKE_COLUMNS = (
    "clicks", "accept p50 ms", "p99 ms", "max ms", "answered", "written", "lost",
    "queue drained in",
)  # fmt: skip


def write(results: dict[str, Any], out: Path) -> Path:
    """Write the report of `results` into the directory `out`; the path of its index.html."""
    # The files are the command's output, not state a request reads back.
    charts = out / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, ensure_ascii=False)
    (out / "results.json").write_text(text + "\n", encoding="utf-8")  # rung: ignore[RUNG201]
    pngs: dict[str, bytes] = {}
    for name, draw in CHARTS.items():
        path = charts / f"{name}.png"
        draw(results).savefig(path, dpi=100)
        pngs[name] = path.read_bytes()
    (out / "summary.md").write_text(summary(results), encoding="utf-8")  # rung: ignore[RUNG201]
    index = out / "index.html"
    index.write_text(page(results, pngs), encoding="utf-8")  # rung: ignore[RUNG201]
    return index


# --- numbers ------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    """`value` as a finite float, else None (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _fmt(value: Any, spec: str = ",.0f", unit: str = "") -> str:
    number = _num(value)
    return NONE if number is None else f"{number:{spec}}{unit}"


def _ms(value: Any) -> str:
    number = _num(value)
    if number is None:
        return NONE
    return f"{number:,.0f}" if number >= 100 else f"{number:.3g}"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _stages(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in results.get("stages") or [] if isinstance(s, dict)]


def _label(stage: dict[str, Any]) -> str:
    step = _num(stage.get("step"))
    name = str(stage.get("id") or stage.get("title") or "?")
    return name if step is None else f"{step:.0f} {name}"


def _nodes(stages: list[dict[str, Any]]) -> list[str]:
    """Every database node any stage measured, in the order they first appear."""
    return list(dict.fromkeys(node for s in stages for node in _dict(s.get("db"))))


def _replica_share(stage: dict[str, Any]) -> float | None:
    shares = [_num(v) for k, v in _dict(stage.get("read_share")).items() if k != "primary"]
    known = [v for v in shares if v is not None]
    return sum(known) if known else None


def stage_row(stage: dict[str, Any]) -> list[str]:
    """One stage's cells, in the order of COLUMNS (plain text: the caller escapes)."""
    latency = _dict(stage.get("latency_ms"))
    cache = _dict(stage.get("cache"))
    per_node = [
        f"{node} {_fmt(_dict(facts).get('statements_per_s'))}"
        for node, facts in _dict(stage.get("db")).items()
    ]
    return [
        _fmt(stage.get("step")),
        str(stage.get("title") or stage.get("id") or NONE),
        _fmt(stage.get("throughput")),
        _ms(latency.get("p50")),
        _ms(latency.get("p99")),
        _ms(latency.get("max")),
        _fmt(stage.get("errors")),
        ", ".join(per_node) or NONE,
        _fmt(_replica_share(stage), ".0%"),
        _fmt(cache.get("hit_rate"), ".1%"),
        _fmt(cache.get("db_reads_per_redirect"), ".3g"),
        _ms(stage.get("stats_query_ms")),
        _busiest(stage),
    ]


def _busiest(stage: dict[str, Any]) -> str:
    """The box most often at its CPU quota, and how often: "app1 85% throttled"."""
    found = busiest(stage)
    return NONE if found is None else f"{found[0]} {found[1]:.0%} throttled"


def spike_window(spike: dict[str, Any]) -> tuple[float, float] | None:
    """Where the 10x spike ran, in seconds on its timeline: from `spike_start` when the runner
    recorded it, else from the first bucket that carries over 3x the base load."""
    length = _num(spike.get("spike_seconds"))
    start = _num(spike.get("spike_start"))
    if length is None:
        return None
    if start is None:
        rows = next((r for r in map(_timeline, _sides(spike).values()) if r), [])
        counts = [c for r in rows if (c := _num(r.get("count"))) is not None]
        if not counts:
            return None
        # The median is a base bucket while the base periods hold most of the buckets; the
        # base rate says the same where the runner gave it, and holds when they do not.
        base = [statistics.median(counts)]
        rate, bucket = _num(spike.get("base_rate")), _num(spike.get("bucket_seconds"))
        if rate is not None and bucket is not None and rate * bucket > 0:
            base.append(rate * bucket)
        above = [r for r in rows if (_num(r.get("count")) or 0) > 3 * min(base)]
        start = _num(above[0].get("t")) if above else None
        if start is None:
            return None
    return start, start + length


def _sides(spike: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: spike[k] for k in ("direct", "queue") if isinstance(spike.get(k), dict)}


def _timeline(side: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [r for r in side.get("timeline") or [] if isinstance(r, dict)]
    return [r for r in rows if _num(r.get("t")) is not None]


# --- charts -------------------------------------------------------------------------------


def _figure(rows: int = 1, *, height: float = 4.5) -> tuple[Figure, list[Axes]]:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise RuntimeError(_NEEDS) from error
    figure = Figure(figsize=(9, height), dpi=100, layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)
    return figure, [a for (a,) in axes]


def _plain(text: str) -> str:
    """`text` as matplotlib draws it literally: a `$` would start mathtext."""
    return text.replace("$", r"\$")


def _empty(axes: Axes, why: str) -> None:
    axes.text(0.5, 0.5, why, ha="center", va="center", transform=axes.transAxes, color=_GREY)
    axes.set_xticks([])
    axes.set_yticks([])


def _stage_axis(axes: Axes, stages: list[dict[str, Any]]) -> None:
    axes.set_xticks(range(len(stages)), [_plain(_label(s)) for s in stages])
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)


def _plain_ticks(axes: Axes) -> None:
    """Log-scale ticks as 1, 10, 100 rather than powers of ten."""
    from matplotlib.ticker import FuncFormatter

    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _objective(results: dict[str, Any]) -> float | None:
    return _num(_dict(results.get("workload")).get("p99_objective_ms"))


def throughput_chart(results: dict[str, Any]) -> Figure:
    """Sustainable req/s per stage; a stage where no step met the objective is marked."""
    stages = _stages(results)
    figure, (axes,) = _figure()
    objective = _objective(results)
    meets = f"p99 ≤ {objective:g} ms" if objective is not None else "the p99 objective"
    axes.set_title(f"Sustainable throughput: the highest rate whose {meets}")
    if not stages:
        _empty(axes, "no stage ran")
        return figure
    values = [_num(s.get("throughput")) for s in stages]
    bars = axes.bar(range(len(stages)), [v or 0.0 for v in values], color=_BLUE, width=0.6)
    top = max((v for v in values if v is not None), default=1.0)
    for bar, value in zip(bars, values, strict=True):
        x = bar.get_x() + bar.get_width() / 2
        if value is None:
            missed = f"{NONE}\nno step\nmet it"
            axes.text(x, top * 0.02, missed, ha="center", va="bottom", color=_RED, fontsize=9)
        else:
            axes.text(x, value, f"{value:,.0f}", ha="center", va="bottom", fontsize=10)
    axes.set_ylim(0, top * 1.15)
    axes.set_ylabel("requests per second")
    _stage_axis(axes, stages)
    return figure


def latency_chart(results: dict[str, Any]) -> Figure:
    """p50, p99 and max latency per stage at its sustainable step, log scale."""
    stages = _stages(results)
    figure, (axes,) = _figure()
    axes.set_title("Latency at each stage's sustainable step (or its lowest step)")
    if not stages:
        _empty(axes, "no stage ran")
        return figure
    width = 0.27
    highest = 0.0
    bars = {"p50": (-1, _GREEN), "p99": (0, _BLUE), "max": (1, _GREY)}
    for key, (offset, color) in bars.items():
        points = [
            (i + offset * width, v)
            for i, s in enumerate(stages)
            if (v := _num(_dict(s.get("latency_ms")).get(key))) is not None and v > 0
        ]
        if points:
            xs, heights = zip(*points, strict=True)
            axes.bar(xs, heights, width=width, color=color, label=key)
            highest = max(highest, *heights)
    objective = _objective(results)
    if objective is not None and objective > 0:
        axes.axhline(
            objective,
            color=_RED,
            linestyle="--",
            linewidth=1.5,
            label=f"p99 objective {objective:g} ms",
        )
        highest = max(highest, objective)
    if highest > 0:
        axes.set_yscale("log")
        axes.set_ylim(top=highest * 3)  # room for the legend above the tallest bar
        _plain_ticks(axes)
        axes.legend(loc="upper left", ncols=4, fontsize=9)
    axes.set_ylabel("milliseconds (log scale)")
    _stage_axis(axes, stages)
    return figure


def db_load_chart(results: dict[str, Any]) -> Figure:
    """Database statements per second on each node, per stage."""
    stages = _stages(results)
    figure, (axes,) = _figure()
    axes.set_title("Database statements per second, per node")
    nodes = _nodes(stages)
    if not stages or not nodes:
        _empty(axes, "no statements were counted")
        return figure
    width = 0.8 / len(nodes)
    for n, node in enumerate(nodes):
        heights = [
            _num(_dict(_dict(s.get("db")).get(node)).get("statements_per_s")) or 0.0 for s in stages
        ]
        xs = [i + (n - (len(nodes) - 1) / 2) * width for i in range(len(stages))]
        axes.bar(xs, heights, width=width, color=_NODES[n % len(_NODES)], label=_plain(node))
    axes.set_ylabel("statements per second")
    axes.legend(loc="upper right", fontsize=9)
    _stage_axis(axes, stages)
    return figure


def spike_chart(results: dict[str, Any]) -> Figure:
    """The 10x write spike: accept latency p99 over time, direct vs queue; the queue's depth."""
    spike = _dict(results.get("spike"))
    sides = _sides(spike)
    if not sides:
        figure, (axes,) = _figure()
        _empty(axes, "no spike: the stages instances and queue did not run")
        return figure
    figure, (latency, depth) = _figure(2, height=5.5)
    base, peak = _num(spike.get("base_rate")), _num(spike.get("spike_rate"))
    rates = f" ({base:,.0f} → {peak:,.0f} req/s)" if base is not None and peak is not None else ""
    latency.set_title(f"A write spike{rates}: each click inserted directly vs through the queue")
    colors = {"direct": _ORANGE, "queue": _BLUE}
    names = {"direct": "direct inserts", "queue": "queue"}
    drawn = False
    for name, side in sides.items():
        rows = _timeline(side)
        ts = [float(r["t"]) for r in rows]
        p99 = [v * 1000 if (v := _num(r.get("p99"))) and v > 0 else math.nan for r in rows]
        if any(not math.isnan(v) for v in p99):
            latency.plot(ts, p99, color=colors[name], linewidth=1.8, label=names[name])
            drawn = True
        if name == "queue":
            depths = [_num(r.get("depth")) for r in rows]
            values = [math.nan if d is None else d for d in depths]
            depth.step(ts, values, where="post", color=_BLUE, linewidth=1.5)
            depth.fill_between(
                ts, [0 if math.isnan(v) else v for v in values], step="post", color=_BLUE, alpha=0.2
            )
    if drawn:
        latency.set_yscale("log")
        _plain_ticks(latency)
    latency.set_ylabel("accept p99, ms (log)")
    depth.set_ylabel("queue depth, events")
    depth.set_xlabel("seconds from the start of the load")
    depth.set_ylim(bottom=0)
    window = spike_window(spike)
    for axes in (latency, depth):
        axes.grid(alpha=0.3)
        axes.set_axisbelow(True)
        if window is not None:
            label = "the spike" if axes is latency else None
            axes.axvspan(*window, color=_RED, alpha=0.08, linewidth=0, label=label)
    if drawn or window is not None:
        latency.legend(loc="upper left", fontsize=9)
    return figure


CHARTS: dict[str, Callable[[dict[str, Any]], Figure]] = {
    "throughput": throughput_chart,
    "latency": latency_chart,
    "db_load": db_load_chart,
    "spike": spike_chart,
}
CAPTIONS = {
    "throughput": "Sustainable throughput per stage",
    "latency": "Latency per stage",
    "db_load": "Database load per node",
    "spike": "The write spike",
}


# --- summary.md ---------------------------------------------------------------------------


def _md(text: Any) -> str:
    """`text` as one markdown table cell that a renderer cannot take for a tag."""
    return str(text).replace("|", r"\|").replace("<", "&lt;").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(map(_md, header)) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(map(_md, row)) + " |" for row in rows),
    ]


def _held(claim: dict[str, Any]) -> str:
    held = claim.get("held")
    return "✓" if held is True else "✗" if held is False else NONE


def _claim_cells(claim: dict[str, Any]) -> list[str]:
    text, measured = claim.get("claim") or NONE, claim.get("measured") or NONE
    return [str(text), str(measured), _held(claim), str(claim.get("why") or "")]


def _ordering(results: dict[str, Any]) -> str:
    ordering = results.get("ordering")
    return f"Throughput, stage by stage: {ordering}" if isinstance(ordering, str) else ""


def summary(results: dict[str, Any]) -> str:
    """The report as markdown: the stage table, the claims, the boxes and the generator."""
    claims = [c for c in results.get("claims") or [] if isinstance(c, dict)]
    lines = [
        "# rung lab: the scaling ladder, measured",
        "",
        " · ".join(_facts(results)),
        "",
        "## Stages",
        "",
        *_md_table(list(COLUMNS), [stage_row(s) for s in _stages(results)]),
        "",
        "## The seed's claims, measured",
        "",
        *_md_table(["claim", "measured", "held", "why"], [_claim_cells(c) for c in claims]),
        "",
        _ordering(results),
        "",
        "## Boxes and load generator",
        "",
        f"- {_md(_boxes_line(results))}",
        f"- {_md(_generator_line(results))}",
    ]
    if notes := _notes(results):
        lines += ["", "## Notes", "", *(f"- {_md(n)}" for n in notes)]
    return "\n".join(lines) + "\n"


# --- words shared by summary.md and index.html --------------------------------------------


def _facts(results: dict[str, Any]) -> list[str]:
    machine = _dict(results.get("machine"))
    started = str(results.get("started_at") or NONE)
    try:
        when = datetime.fromisoformat(started)
        started = f"{when.day} {when:%B %Y, %H:%M %Z}".strip(", ")
    except ValueError:
        pass
    quick = results.get("quick")
    return [
        started,
        f"{_fmt(results.get('seconds'), ',.0f', ' s')} in all",
        "quick run" if quick is True else "full run" if quick is False else f"run {NONE}",
        f"{_fmt(machine.get('cpus'))} CPUs, Python {machine.get('python') or NONE}, "
        f"PostgreSQL {machine.get('postgres') or NONE}",
        f"rung {results.get('rung_version') or NONE}",
    ]


def _boxes(results: dict[str, Any]) -> dict[str, str]:
    cpus = _dict(_dict(results.get("boxes")).get("cpus"))
    return {str(name): _fmt(value, "g", " CPU") for name, value in cpus.items()}


def _boxes_line(results: dict[str, Any]) -> str:
    boxes = _dict(results.get("boxes"))
    if boxes.get("enforced") is not True:
        return f"CPU boxes not enforced: {boxes.get('why') or 'no reason given'}"
    sizes = ", ".join(f"{name} {size}" for name, size in _boxes(results).items())
    return f"CPU boxes ({boxes.get('method') or NONE}): {sizes or NONE}"


def _generator_cpu(results: dict[str, Any]) -> str:
    """The load generator's busiest step, as a share of one core (load.Run.cpu)."""
    return _fmt(_dict(results.get("generator")).get("cpu_max"), ".0%", " of one core")


def _generator_line(results: dict[str, Any]) -> str:
    tool = _dict(results.get("generator")).get("tool") or NONE
    return f"Load generator: {tool}; at its busiest, {_generator_cpu(results)}"


def _workload(results: dict[str, Any]) -> list[tuple[str, str]]:
    workload = _dict(results.get("workload"))
    mix = _dict(workload.get("mix"))
    return [
        ("links", _fmt(workload.get("links"))),
        ("clicks already recorded", _fmt(workload.get("clicks"))),
        ("link popularity", f"Zipf, s = {_fmt(workload.get('zipf_s'), 'g')}"),
        ("mix", ", ".join(f"{k} {_fmt(v, '.0%')}" for k, v in mix.items()) or NONE),
        ("p99 objective", _fmt(workload.get("p99_objective_ms"), "g", " ms")),
        ("each load step", _fmt(workload.get("step_seconds"), "g", " s")),
    ]


def _notes(results: dict[str, Any]) -> list[str]:
    return [str(n) for n in results.get("notes") or []]


# --- index.html ---------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       background: #fafafa; margin: 0; }
main { max-width: 1000px; margin: 0 auto; padding: 24px 28px 48px; background: #fff;
       min-height: 100vh; box-shadow: 0 0 12px rgba(0,0,0,.06); }
h1 { font-size: 1.7rem; margin: 0 0 4px; }
h2 { font-size: 1.25rem; margin: 36px 0 10px; border-bottom: 1px solid #e4e4e4;
     padding-bottom: 4px; }
.facts { color: #555; margin: 0; }
.claims { list-style: none; padding: 0; margin: 0; }
.claims li { display: flex; gap: 12px; padding: 10px 14px; margin: 8px 0; border-radius: 6px;
             border-left: 5px solid; }
.claims li.held { background: #eef7f0; border-color: #55a868; }
.claims li.failed { background: #fbeeee; border-color: #c44e52; }
.mark { font-size: 1.3rem; font-weight: 700; width: 1.4rem; flex: none; }
.held .mark { color: #2e7d43; } .failed .mark { color: #b03a3e; }
.claims p { margin: 0; } .claim { font-weight: 600; }
.measured, .why { color: #444; font-size: .93rem; }
figure { margin: 18px 0; } figure img { width: 100%; max-width: 900px; display: block; }
figcaption { color: #555; font-size: .9rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .85rem; margin: 8px 0; }
th, td { border: 1px solid #e0e0e0; padding: 4px 8px; text-align: right; vertical-align: top; }
th { background: #f2f4f7; } tr:nth-child(even) td { background: #fafbfc; }
td.text, th.text { text-align: left; }
td small { color: #666; display: block; max-width: 260px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 0; }
dt { color: #555; } dd { margin: 0; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _claims_html(results: dict[str, Any]) -> str:
    claims = [c for c in results.get("claims") or [] if isinstance(c, dict)]
    if not claims:
        return "<p>No claim could be checked: the stages they need did not run.</p>"
    items = []
    for c in claims:
        held = c.get("held") is True
        verdict = "held" if held else "did not hold"
        why = "" if held or not c.get("why") else f'<p class="why">Why: {_e(c["why"])}</p>'
        items.append(
            f'<li class="{"held" if held else "failed"}"><span class="mark">{_held(c)}</span>'
            f'<div><p class="claim">{_e(c.get("claim") or NONE)}</p>'
            f'<p class="measured">{_e(c.get("measured") or NONE)}: <b>{verdict}</b></p>'
            f"{why}</div></li>"
        )
    return f'<ul class="claims">{"".join(items)}</ul>'


def _table(header: list[str], rows: list[list[str]], *, text: int = 1) -> str:
    """An HTML table of plain-text cells; the first `text` columns are left-aligned."""

    def cell(tag: str, i: int, value: str) -> str:
        return f"<{tag}{' class=text' if i < text else ''}>{value}</{tag}>"

    head = "".join(cell("th", i, _e(h)) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _stages_html(results: dict[str, Any]) -> str:
    rows = []
    for stage in _stages(results):
        cells = [_e(v) for v in stage_row(stage)]
        if stage.get("summary"):
            cells[1] += f"<small>{_e(stage['summary'])}</small>"
        rows.append(cells)
    return _table(list(COLUMNS), rows, text=2) if rows else "<p>No stage ran.</p>"


def _spike_html(results: dict[str, Any]) -> str:
    sides = _sides(_dict(results.get("spike")))
    rows = []
    for name, side in sides.items():
        accept, clicks = _dict(side.get("accept_ms")), _dict(side.get("clicks"))
        rows.append(
            [_e(name)]
            + [_e(_ms(accept.get(k))) for k in ("p50", "p99", "max")]
            + [_e(_fmt(clicks.get(k))) for k in ("answered", "written", "lost")]
            + [_e(_fmt(side.get("drained_seconds"), ".1f", " s"))]
        )
    return _table(list(SPIKE_COLUMNS), rows) if rows else ""


def _charts_html(results: dict[str, Any], pngs: dict[str, bytes]) -> str:
    figures = []
    for name, png in pngs.items():
        data = base64.b64encode(png).decode("ascii")
        caption = CAPTIONS.get(name, name)
        extra = _spike_html(results) if name == "spike" else ""
        figures.append(
            f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>{extra}"
        )
    return "".join(figures)


def _boxes_html(results: dict[str, Any]) -> str:
    boxes = _dict(results.get("boxes"))
    if boxes.get("enforced") is not True:
        return f"<p>{_e(_boxes_line(results))}</p>"
    sizes = [[_e(name), _e(size)] for name, size in _boxes(results).items()]
    method = f"<p>Each tier ran in its own CPU box ({_e(boxes.get('method') or NONE)}).</p>"
    return method + _table(["tier", "CPUs"], sizes)


def _dl(pairs: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in pairs) + "</dl>"


def page(results: dict[str, Any], pngs: dict[str, bytes]) -> str:
    """index.html: the whole report on one page that fetches nothing and runs no script."""
    tool = _dict(results.get("generator")).get("tool") or NONE
    notes = _notes(results)
    sections = [
        "<h1>rung lab: the scaling ladder, measured</h1>",
        f'<p class="facts">{_e(" · ".join(_facts(results)))}</p>',
        "<h2>The seed's claims, measured</h2>",
        _claims_html(results),
        f"<p>{_e(_ordering(results))}</p>",
        "<h2>Charts</h2>",
        _charts_html(results, pngs),
        "<h2>Each stage</h2>",
        _stages_html(results),
        "<h2>CPU boxes</h2>",
        _boxes_html(results),
        "<h2>Load generator</h2>",
        _dl([("tool", str(tool)), ("CPU at its busiest", _generator_cpu(results))]),
        "<h2>Workload</h2>",
        _dl(_workload(results)),
    ]
    if notes:
        sections += ["<h2>Notes</h2>", "<ul>", *(f"<li>{_e(n)}</li>" for n in notes), "</ul>"]
    body = "\n".join(sections)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>rung lab: {_e(results.get('started_at') or '')}</title>\n"
        f"<style>{_STYLE}</style></head>\n<body><main>\n{body}\n</main></body></html>\n"
    )
