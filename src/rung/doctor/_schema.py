"""The JSON form of a doctor's report, as a JSON Schema (report.schema.json beside this)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

SCHEMA: dict[str, Any] = json.loads(
    resources.files("rung.doctor").joinpath("report.schema.json").read_text(encoding="utf-8")
)
