"""Verify at scale: runs ``bench.verify_scale`` (verify of 1,000,000 jobs against a raw scan)
when that module is present, and reports why not otherwise."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any

DEFAULT_ROWS = 1_000_000
SMOKE_ROWS = 2_000


@dataclass
class ScaleRun:
    rows: int
    figures: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    skipped: str | None = None


def run(*, smoke: bool = False, rows: int | None = None, pg: bool = True) -> ScaleRun:
    rows = rows or (SMOKE_ROWS if smoke else DEFAULT_ROWS)
    if importlib.util.find_spec("bench.verify_scale") is None:
        return ScaleRun(rows, skipped="bench/verify_scale.py is not there yet")
    module = importlib.import_module("bench.verify_scale")
    try:
        figures = module.run(rows=rows, pg_rows=None if pg else 0)
    except Exception as exc:
        return ScaleRun(rows, error=f"{type(exc).__name__}: {exc}")
    return ScaleRun(rows, figures=dict(figures) if not isinstance(figures, dict) else figures)
