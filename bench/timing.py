"""How one benchmark is timed, and how repetitions are folded into one figure.

Each benchmark is a `Bench`: ``run(start, stop)`` performs operations ``start`` to ``stop - 1``.
Operations are timed one by one unless the bench sets ``batch``: operations that take well under
a microsecond are timed in batches (each lasting a few microseconds, so the clock's own cost stays
out of the figure) and every operation in a batch is credited the batch's mean. A bench may do
untimed work before each batch (``prepare``). Setup and teardown are never timed.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

FAST_BATCH = 50
"""The batch for operations that take well under a microsecond."""


class Bench(Protocol):
    def run(self, start: int, stop: int) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Case:
    """One contender doing one operation.

    ``group`` is where it is compared (``sqlite``, ``postgresql`` or ``memory``), ``impl`` who
    does it, ``op`` what; ``make(n)`` builds a `Bench` ready for ``n`` timed operations.
    """

    group: str
    impl: str
    op: str
    make: Callable[[int], Bench]
    n: int
    note: str = ""


@dataclass
class Sample:
    """One repetition of one case."""

    per_op_ns: list[float]
    wall_ns: int
    ops: int

    @property
    def median_us(self) -> float:
        return statistics.median(self.per_op_ns) / 1000

    @property
    def p99_us(self) -> float:
        return percentile(self.per_op_ns, 0.99) / 1000

    @property
    def p999_us(self) -> float:
        return percentile(self.per_op_ns, 0.999) / 1000

    @property
    def ops_per_s(self) -> float:
        return self.ops / (self.wall_ns / 1e9) if self.wall_ns else math.inf


@dataclass
class Result:
    """Every repetition of one case, folded into medians."""

    case: Case
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.case.group, self.case.impl, self.case.op

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.samples)

    @property
    def median_us(self) -> float:
        return statistics.median(s.median_us for s in self.samples)

    @property
    def p99_us(self) -> float:
        return statistics.median(s.p99_us for s in self.samples)

    @property
    def p999_us(self) -> float:
        return statistics.median(s.p999_us for s in self.samples)

    @property
    def ops_per_s(self) -> float:
        return statistics.median(s.ops_per_s for s in self.samples)

    @property
    def spread(self) -> tuple[float, float]:
        """The lowest and highest median over the repetitions, in µs."""
        medians = [s.median_us for s in self.samples]
        return min(medians), max(medians)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def measure(bench: Bench, n: int) -> Sample:
    """Time ``n`` operations of ``bench``."""
    batch = max(1, int(getattr(bench, "batch", 1)))
    prepare = getattr(bench, "prepare", None)
    clock = time.perf_counter_ns
    per_op: list[float] = []
    wall = 0
    done = 0
    gc.collect()
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        if prepare is not None:
            prepare(start, stop)
        t0 = clock()
        bench.run(start, stop)
        elapsed = clock() - t0
        wall += elapsed
        done += stop - start
        per_op.extend([elapsed / (stop - start)] * (stop - start))
    return Sample(per_op, wall, done)
