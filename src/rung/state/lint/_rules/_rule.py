"""`Rule`: what a rule of `rung lint` is called, what it finds and the fix it names. Each
rule's module in this package holds its own, beside its checks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    name: str
    summary: str
    fix: str


NOT_CHECKED = Rule(
    "RUNG000", "not-checked",
    "The file could not be checked: a syntax error, bytes that do not decode, a null byte, "
    "nesting deeper than Python's parser allows, or a size over the limit.",
    "Fix what the message names; leave generated modules out of the PATHs you lint.",
)  # fmt: skip
