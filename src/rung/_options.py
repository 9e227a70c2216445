"""Checks for numeric options, run at construction: a bad value fails there, with a
`ValueError` that names the option, not later as a hang or a crash. NaN fails every range
check here (it passes a bare `x <= 0` test).

    self.max_lag = seconds("max_lag", max_lag)                 # finite, >= 0
    self.acquire_timeout = seconds("acquire_timeout", acquire_timeout, positive=True)
    self.max_rate = rate("max_rate", max_rate)                 # rows/s: finite, > 0
"""

from __future__ import annotations

import math


def seconds(name: str, value: float, *, positive: bool = False, most: float = 86_400.0) -> float:
    """`value` as float seconds: finite, >= 0 (> 0 with `positive`), at most `most`."""
    return _number(name, value, "seconds", positive=positive, most=most)


def rate(name: str, value: float, *, most: float = 1e9) -> float:
    """`value` as a rate per second: finite, > 0, at most `most`."""
    return _number(name, value, "per second", positive=True, most=most)


def _number(name: str, value: float, unit: str, *, positive: bool, most: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number ({unit}), not {value!r}")
    number = float(value)
    low_ok = number > 0 if positive else number >= 0
    if not (math.isfinite(number) and low_ok and number <= most):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be finite, {bound} and <= {most:g} {unit}, not {value!r}")
    return number


def count(name: str, value: int, *, least: int = 0, most: int = 1_000_000_000) -> int:
    """`value` as an int from `least` to `most`."""
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise ValueError(f"{name} must be a whole number from {least} to {most}, not {value!r}")
    return value
