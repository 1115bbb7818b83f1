"""Runs cases over several interleaved repetitions and folds them into `Result`s."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Sequence

from .timing import Case, Result, measure


def run_cases(cases: Sequence[Case], repeats: int, *, verbose: bool = True) -> list[Result]:
    """Every case once per repetition, in the same order each time, so that a slow moment of the
    machine falls on neighbours alike; a case that fails is recorded and not repeated."""
    results = [Result(case) for case in cases]
    for rep in range(repeats):
        started = time.monotonic()
        for result in results:
            if result.error is not None:
                continue
            case = result.case
            try:
                bench = case.make(case.n)
                try:
                    result.samples.append(measure(bench, case.n))
                finally:
                    bench.close()
            except Exception as exc:
                result.error = f"{type(exc).__name__}: {exc}"
                if verbose:
                    traceback.print_exc()
        if verbose:
            print(f"  repetition {rep + 1}/{repeats}: {time.monotonic() - started:.1f} s",
                  file=sys.stderr, flush=True)
    return results
