"""The lab's report: every file, real charts, one page that fetches nothing, "—" for what the
lab did not measure, and every string from the results escaped."""

from __future__ import annotations

import base64
import html
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest

from rung.lab import report

SAMPLE = Path(__file__).with_name("sample_results.json")
CHARTS = ("throughput", "latency", "db_load", "spike")
HOSTILE = '<script>alert(1)</script> | & "quoted"'


def sample() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return report.write(sample(), tmp_path_factory.mktemp("report") / "out")


def stage_rows(markdown: str) -> list[str]:
    """The stage table's body rows in summary.md."""
    section = markdown.split("## Stages\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|")][2:]


def images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def nulled(value: Any) -> Any:
    """`value` with every number in it replaced by None (booleans kept)."""
    if isinstance(value, dict):
        return {k: nulled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nulled(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return None
    return value


def test_the_sample_is_a_whole_run() -> None:
    """The fixture has the runner's shape: eight stages, both spike sides, the claims."""
    data = sample()
    assert [s["id"] for s in data["stages"]] == [
        "naive", "indexes", "pool", "pgbouncer", "replica", "cache", "instances", "queue"
    ]  # fmt: skip
    assert [s["step"] for s in data["stages"]] == [1, 2, 3, 3, 4, 5, 6, 7]
    spike = data["spike"]
    scheduled = (2 * spike["spike_start"] + spike["spike_seconds"]) / spike["bucket_seconds"]
    for side in ("direct", "queue"):
        assert len(spike[side]["timeline"]) >= scheduled
    assert len(data["claims"]) == 7 and isinstance(data["ordering"], str)


def test_write_writes_every_file_and_returns_the_page(index: Path) -> None:
    out = index.parent
    assert out / "index.html" == index
    expected = {"results.json", "summary.md", "index.html"} | {f"charts/{c}.png" for c in CHARTS}
    assert expected <= {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert sample() == json.loads((out / "results.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("chart", CHARTS)
def test_each_chart_is_a_png_with_something_drawn(index: Path, chart: str) -> None:
    path = index.parent / "charts" / f"{chart}.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5_000
    pixels = matplotlib.image.imread(path)
    assert (pixels.shape[1], pixels.shape[0]) >= (900, 450)
    assert distinct_colors(pixels) > 50


def distinct_colors(pixels: Any) -> int:
    """How many RGB colors an image of floats in [0, 1] holds (as 24-bit integers: fast)."""
    rgb = (np.asarray(pixels)[..., :3] * 255).round().astype(np.uint32)
    return len(np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]))


def test_the_page_fetches_nothing_and_runs_nothing(index: Path) -> None:
    page = index.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert re.findall(r"""\ssrc=["']?([a-z]+):""", page) == ["data"] * 4
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "url(" not in page and "@import" not in page
    assert f'content="{report.CSP}"' in page


def test_the_page_embeds_the_four_charts_as_written(index: Path) -> None:
    page = index.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 4
    charts = [(index.parent / "charts" / f"{c}.png").read_bytes() for c in CHARTS]
    assert charts == images(page)


def test_the_page_names_every_stage_and_claim(index: Path) -> None:
    page = index.read_text(encoding="utf-8")
    data = sample()
    for stage in data["stages"]:
        assert html.escape(stage["title"]) in page, stage["id"]
        assert html.escape(stage["summary"]) in page, stage["id"]
    for claim in data["claims"]:
        assert html.escape(claim["claim"]) in page
        assert html.escape(claim["measured"]) in page
        if not claim["held"]:
            assert html.escape(claim["why"]) in page


def test_the_claims_come_before_the_charts(index: Path) -> None:
    page = index.read_text(encoding="utf-8")
    assert page.index("<h2>The seed's claims, measured</h2>") < page.index("data:image/png")


def test_summary_has_one_row_per_stage(index: Path) -> None:
    markdown = (index.parent / "summary.md").read_text(encoding="utf-8")
    rows = stage_rows(markdown)
    assert [s["title"] for s in sample()["stages"]] == [r.split(" | ")[1] for r in rows]
    assert all(r.count(" | ") == len(report.COLUMNS) - 1 for r in rows)
    assert "| 1 | naive | 12 | 16.4 | 31.8 | 34.3 | 0 | primary 48, replica1 0 |" in markdown


def test_summary_marks_each_claim_held_or_not(index: Path) -> None:
    markdown = (index.parent / "summary.md").read_text(encoding="utf-8")
    for claim in sample()["claims"]:
        mark = "✓" if claim["held"] else "✗"
        assert f"| {claim['measured']} | {mark} |" in markdown


def test_what_the_lab_did_not_measure_renders_as_a_dash(tmp_path: Path) -> None:
    """Null throughput, stats query time and hit rate, and no spike: the report still renders."""
    data = sample()
    for stage in data["stages"]:
        stage["throughput"] = None
        stage["stats_query_ms"] = None
        stage["cache"]["hit_rate"] = None
    data["spike"] = None
    index = report.write(data, tmp_path)
    rows = stage_rows((tmp_path / "summary.md").read_text(encoding="utf-8"))
    assert [
        [r.split(" | ")[i] for i in (2, 9)] + [r.split(" | ")[11].rstrip(" |")] for r in rows
    ] == [["—"] * 3] * 8
    assert len(images(index.read_text(encoding="utf-8"))) == 4


def test_a_results_dict_with_every_number_null_still_renders(tmp_path: Path) -> None:
    index = report.write(nulled(sample()), tmp_path)
    page = index.read_text(encoding="utf-8")
    assert len(images(page)) == 4
    assert len(stage_rows((tmp_path / "summary.md").read_text(encoding="utf-8"))) == 8


def test_a_run_of_some_stages_and_half_a_spike_renders(tmp_path: Path) -> None:
    data = sample()
    data["stages"] = data["stages"][:2]
    data["spike"]["direct"] = None
    data["boxes"] = {"enforced": False, "method": None, "why": "no cgroup here", "cpus": {}}
    page = report.write(data, tmp_path).read_text(encoding="utf-8")
    assert "CPU boxes not enforced: no cgroup here" in page
    assert len(stage_rows((tmp_path / "summary.md").read_text(encoding="utf-8"))) == 2


def test_a_hostile_string_is_escaped_everywhere(tmp_path: Path) -> None:
    data = sample()
    data["claims"][1].update(claim=HOSTILE, measured=HOSTILE, why=HOSTILE, held=False)
    data["stages"][0].update(title=HOSTILE, summary=HOSTILE)
    data["stages"][0]["db"] = {HOSTILE: {"statements_per_s": 1.0, "reads_per_s": 1.0}}
    data["notes"] = [HOSTILE]
    data["generator"]["tool"] = HOSTILE
    page = report.write(data, tmp_path).read_text(encoding="utf-8")
    assert "<script" not in page
    assert page.count(html.escape(HOSTILE)) >= 6
    markdown = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert len(stage_rows(markdown)) == 8
    assert "<script" not in markdown
    assert r"&lt;script>alert(1)&lt;/script> \| &" in markdown


def test_the_spike_window_is_the_runners_when_it_says(tmp_path: Path) -> None:
    spike = sample()["spike"]
    assert report.spike_window(spike) == (2.0, 5.0)
    assert report.spike_window({**spike, "spike_start": 1.0}) == (1.0, 4.0)


def test_the_spike_window_is_found_from_the_counts_otherwise() -> None:
    """Without `spike_start`, the first bucket over 3x the base load starts it."""
    spike = sample()["spike"]
    del spike["spike_start"]
    assert report.spike_window(spike) == (2.0, 5.0)
    del spike["base_rate"]  # the median bucket alone
    assert report.spike_window(spike) == (2.0, 5.0)


def test_the_spike_window_is_found_when_the_spike_holds_most_buckets() -> None:
    """The median is then a spike bucket; the base rate still finds the start."""
    rows = [{"t": i * 0.25, "count": 175 if 2 <= i < 40 else 17} for i in range(44)]
    spike = {"base_rate": 70.0, "bucket_seconds": 0.25, "spike_seconds": 9.5}
    spike["queue"] = {"timeline": rows}
    assert report.spike_window(spike) == (0.5, 10.0)


def test_the_spike_window_is_unknown_without_a_timeline() -> None:
    assert report.spike_window({"spike_seconds": 5.0, "direct": None, "queue": None}) is None
    assert report.spike_window({}) is None


def test_the_module_imports_without_matplotlib() -> None:
    code = "import sys; sys.modules['matplotlib'] = None; from rung.lab import report"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_without_matplotlib_write_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(RuntimeError, match=re.escape("pip install 'rung[lab]'")):
        report.write(sample(), tmp_path)
