"""The results as a console table, and as docs/benchmarks.md with a chart (docs/benchmarks.png)."""

from __future__ import annotations

import contextlib
import math
import platform
import sqlite3
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from . import fleet_recorded, readback
from .env import Env
from .model import JOB_BYTES
from .peers import GET_DB, GET_MEMORY, SET, WRITE_BACK
from .scale import ScaleRun
from .timing import Result
from .writers import Concurrency

OP_ORDER = [SET, GET_MEMORY, GET_DB, WRITE_BACK]
GROUP_TITLES = {"memory": "In memory", "sqlite": "SQLite (one file, WAL, synchronous=NORMAL)",
                "postgresql": "PostgreSQL (TCP loopback)"}
RAW = {"sqlite": "raw sqlite3", "postgresql": "raw psycopg"}
WRAPPER = ("memory", "MutableMapping wrapper", GET_MEMORY)


def reference(group: str, op: str) -> tuple[str, str, str] | None:
    """What a result is divided by in the ratio column: the raw driver doing the same, or the
    bare wrapper for reads the dict answers."""
    if op == GET_MEMORY:
        return WRAPPER
    if group == "memory":
        return ("memory", "MutableMapping wrapper", op)
    raw = RAW.get(group)
    if raw is None:
        return None
    return (group, raw, SET if op == WRITE_BACK else op)


def ratio(result: Result | None, ref: Result | None) -> float:
    """The median, over repetitions, of this result's median over the reference's in the same
    repetition."""
    if result is None or ref is None or not result.ok or not ref.ok:
        return math.nan
    pairs = zip(result.samples, ref.samples, strict=False)
    return statistics.median(a.median_us / b.median_us for a, b in pairs)


def tail_ratio(result: Result | None, _: Result | None) -> float:
    """The median, over repetitions, of a result's p99.9 over its own median."""
    if result is None or not result.ok:
        return math.nan
    return statistics.median(s.p999_us / s.median_us for s in result.samples)


@dataclass(frozen=True)
class Target:
    what: str
    subject: tuple[str, str, str]
    against: tuple[str, str, str]
    limit: float
    why_missed: str = ""
    figure: Callable[[Result | None, Result | None], float] = ratio


DUAL_SET = ("sqlite", "JobStore dual_write", SET)
TARGETS = [
    Target("dual_write set ≤ 2.0× raw sqlite3 upsert+commit (same encoding)",
           DUAL_SET, ("sqlite", "raw sqlite3", SET), 2.0),
    Target("dual_write set ≤ 0.9× diskcache.Index set",
           DUAL_SET, ("sqlite", "diskcache.Index", SET), 0.9),
    Target("memory-hit get ≤ 6× a bare MutableMapping wrapper",
           ("sqlite", "JobStore dual_write", GET_MEMORY), WRAPPER, 6.0),
    Target("DB get ≤ 2.0× raw select + decode",
           ("sqlite", "JobStore dual_write", GET_DB), ("sqlite", "raw sqlite3", GET_DB), 2.0),
    Target("PostgreSQL set ≤ 1.0× raw psycopg",
           ("postgresql", "JobStore dual_write", SET), ("postgresql", "raw psycopg", SET), 1.0),
    Target("p99.9 of a dual_write set ≤ 10× its median (SQLite)", DUAL_SET, DUAL_SET, 10.0,
           figure=tail_ratio),
    Target("in-place change write-back ≤ 1.5× a set (SQLite, dual_write)",
           ("sqlite", "JobStore dual_write", WRITE_BACK), DUAL_SET, 1.5),
]


def _index(results: Sequence[Result]) -> dict[tuple[str, str, str], Result]:
    return {r.key: r for r in results}


def target_rows(results: Sequence[Result], verify: ScaleRun | None = None,
                ) -> list[tuple[Target, float, bool | None]]:
    idx = _index(results)
    rows = []
    for target in TARGETS:
        value = target.figure(idx.get(target.subject), idx.get(target.against))
        met = None if math.isnan(value) else value <= target.limit
        rows.append((target, value, met))
    if verify is not None and verify.figures:
        value = verify.figures.get("sqlite_verify_vs_raw_total", math.nan)
        rows_n = verify.figures.get("sqlite_rows", verify.rows)
        target = Target(f"verify of {rows_n:,} jobs ≤ {VERIFY_LIMIT:g}× the raw scan (SQLite)",
                        ("", "", ""), ("", "", ""), VERIFY_LIMIT)
        value = float(value) if isinstance(value, (int, float)) else math.nan
        rows.append((target, value, None if math.isnan(value) else value <= VERIFY_LIMIT))
    return rows


def _fmt_us(value: float) -> str:
    if math.isnan(value):
        return "–"
    if value < 1:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _fmt_rate(value: float) -> str:
    return "–" if math.isnan(value) or math.isinf(value) else f"{value:,.0f}"


def _fmt_ratio(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}×"


def operation_rows(results: Sequence[Result], group: str) -> list[list[str]]:
    idx = _index(results)
    mine = [r for r in results if r.case.group == group]
    mine.sort(key=lambda r: (OP_ORDER.index(r.case.op), not r.case.impl.startswith("JobStore"),
                             r.case.impl))
    rows = []
    for r in mine:
        ref_key = reference(group, r.case.op)
        ref = idx.get(ref_key) if ref_key else None
        ref_name = "" if ref_key is None or ref_key == r.key else (
            f" (vs {ref_key[1]}{'' if ref_key[2] == r.case.op else ' ' + ref_key[2]})")
        if not r.ok:
            rows.append([r.case.op, r.case.impl, "error", "", "", "", r.error or "no samples"])
            continue
        low, high = r.spread
        rows.append([
            r.case.op, r.case.impl, _fmt_us(r.median_us), _fmt_us(r.p99_us), _fmt_us(r.p999_us),
            _fmt_rate(r.ops_per_s),
            ("" if ref is r else _fmt_ratio(ratio(r, ref)) + ref_name)
            + (f" — {r.case.note}" if r.case.note else ""),
            f"{_fmt_us(low)}–{_fmt_us(high)}",
        ])
    return rows


HEADERS = ["operation", "who", "median µs", "p99 µs", "p99.9 µs", "ops/s", "ratio", "medians seen"]


def _markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _plain_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) if i < len(r) else 0 for r in rows)) for i, h in
              enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    out += ["  ".join((r[i] if i < len(r) else "").ljust(w) for i, w in enumerate(widths))
            for r in rows]
    return "\n".join(out)


def console(results: Sequence[Result], concurrency: Concurrency | None,
            verify: ScaleRun | None, env: Env) -> str:
    parts = []
    for group in ("memory", "sqlite", "postgresql"):
        rows = operation_rows(results, group)
        if rows:
            parts.append(f"\n{GROUP_TITLES[group]}\n" + _plain_table(HEADERS, rows))
    check_rows = readback.rows(list(results))
    if check_rows:
        parts.append(f"\n{readback.TITLE}\n" + _plain_table(readback.HEADERS, check_rows))
    parts.append("\nTargets\n" + _plain_table(
        ["target", "ratio", "met"],
        [[t.what, _fmt_ratio(v), {True: "yes", False: "NO", None: "–"}[m]]
         for t, v, m in target_rows(results, verify)]))
    if concurrency is not None:
        parts.append("\nWriters on one SQLite file\n" + _plain_table(
            ["who", "processes", "writes", "writes/s"], _writer_rows(concurrency)))
        if concurrency.error:
            parts.append(f"writers failed: {concurrency.error}")
    if verify is not None:
        parts.append("\nVerify at scale\n" + _verify_text(verify))
    return "\n".join(parts)


def _writer_rows(concurrency: Concurrency) -> list[list[str]]:
    return [[r.impl, str(r.processes), f"{r.writes:,}", f"{r.per_s:,.0f}"]
            for r in concurrency.runs]


def _verify_rows(verify: ScaleRun) -> tuple[list[str], list[list[str]]]:
    """The verify-at-scale figures as a table: one row per figure, one column per backend."""
    backends = ["sqlite", "postgresql"]
    names: list[str] = []
    cells: dict[tuple[str, str], str] = {}
    notes = []
    for key, value in verify.figures.items():
        backend, _, name = key.partition("_")
        if backend not in backends or not name:
            notes.append(f"{key}: {value}")
            continue
        if name not in names:
            names.append(name)
        cells[(backend, name)] = f"{value:,}" if isinstance(value, int) else str(value)
    used = [b for b in backends if any((b, n) in cells for n in names)]
    rows = [[name.replace("_", " ")] + [cells.get((b, name), "") for b in used] for name in names]
    rows += [[note, *[""] * len(used)] for note in notes]
    return ["figure", *used], rows


def _verify_text(verify: ScaleRun, markdown: bool = False) -> str:
    if verify.skipped:
        return f"not run: {verify.skipped}"
    if verify.error:
        return f"failed: {verify.error}"
    headers, rows = _verify_rows(verify)
    return _markdown_table(headers, rows) if markdown else _plain_table(headers, rows)


VERIFY_LIMIT = 2.0


def _versions() -> str:
    names = ["SQLAlchemy", "pydantic", "psycopg", "diskcache", "sqlitedict"]
    found = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return ", ".join([f"Python {platform.python_version()}", f"SQLite {sqlite3.sqlite_version}",
                      *found])


def _what_is_left(results: Sequence[Result]) -> str:
    idx = _index(results)
    raw = idx.get(("sqlite", "raw sqlite3", SET))
    floor = ratio(idx.get(("sqlite", "raw sqlite3 + history row", SET)), raw)
    ours = ratio(idx.get(("sqlite", "JobStore dual_write", SET)), raw)
    return (
        "**What is left of a SQLite write is mostly SQLite's own work.** Each commit rewrites "
        "four b-tree pages (the job row, its status-index entry, the history row, the history "
        "index entry) where the bare upsert rewrites one; strace counts 9.6 `pwrite` calls per "
        "commit against 2.2. The same statements sent by hand on jobstore's tables (*raw sqlite3 "
        f"+ history row*) cost {floor:.2f}× the bare upsert in this run, and a `dual_write` set "
        f"{ours:.2f}×; the difference is jobstore's own work (encoding, where pydantic's "
        "`warnings='error'` alone costs about as much as a second serialization, the dict tier "
        "and the tracking of the handed-out object). On this shared machine that ratio has "
        "ranged from 2.1× to 3.2× between full runs (five or seven repetitions each), so the "
        "2.5× target is met in some runs and missed in others; diskcache, which keeps no "
        "history, sits at about the same cost."
    )


def missed_notes(results: Sequence[Result]) -> dict[str, str]:
    """Why a target is missed, by target text, with this run's own figures."""
    idx = _index(results)
    raw = idx.get(("sqlite", "raw sqlite3", SET))
    floor = ratio(idx.get(("sqlite", "raw sqlite3 + history row", SET)), raw)
    ours = ratio(idx.get(("sqlite", "JobStore dual_write", SET)), raw)
    disk = ratio(idx.get(("sqlite", "diskcache.Index", SET)), raw)
    set_why = (
        "a jobstore write is four statements on two indexed tables (BEGIN IMMEDIATE, the "
        "upsert RETURNING the version, the history row, COMMIT), and each commit rewrites four "
        "b-tree pages — the job row, the history row and its (key, id) index entry, and the "
        "status-index entry when the status changes (a write that keeps the status matches it "
        "instead of setting it, since SQLite rewrites an index entry whose column is SET even "
        "to the value it holds) — where the bare upsert rewrites one. The same "
        f"statements sent by hand on the same tables (*raw sqlite3 + history row*) cost "
        f"{floor:.2f}× the bare upsert in this run: that is the floor. jobstore's own work on "
        f"top (encoding with `warnings='error'`, the NaN check, the dict tier, its entry and "
        f"tracking bookkeeping, the kept-connection lock) takes it to {ours:.2f}×. Going lower "
        "means dropping the history index or the status index (the contract keeps both); "
        "writing the history row by trigger measured no faster."
    )
    disk_why = (
        f"diskcache.Index writes one row per set (it keeps no history) and pickles "
        f"({disk:.2f}× the bare upsert here); a jobstore set also writes the history row and "
        "its index entry, which is the difference."
    )
    return {
        TARGETS[0].what: set_why,
        TARGETS[1].what: disk_why,
        TARGETS[2].what: "the dict answers, but every read still checks that the entry is "
                         "fresh and that the handed-out object is tracked as it is.",
        TARGETS[3].what: "the read is one SELECT and one decode, as the baseline's; the rest is "
                         "the store putting the value into the dict and tracking it.",
        TARGETS[4].what: "the write is one statement, one round trip; the rest is the server.",
        TARGETS[5].what: "the slow sets are SQLite's automatic WAL checkpoints (every 1,000 "
                         "WAL pages), which run inside the COMMIT of whichever write crosses "
                         "the mark, on the caller's thread.",
        TARGETS[6].what: "a write-back encodes every tracked job to find the changed ones, "
                         "parses the baseline and the new JSON to compare them, and writes "
                         "each changed job in its own compare-and-set transaction.",
    }


READING = """\
- *JobStore memory* encodes every value it is given, as every stage does, so that a value that
  cannot be stored is refused when it is written rather than at cutover: its set is the
  encoding's cost, not the dict's.
- *JobStore shadow* reads the database for a sampled share of memory hits (10 % by default) and
  compares; its memory-hit figure is mostly those reads.
- *In-place change* writes each changed job in its own transaction during `sync()` (or the
  loop's round), after encoding every tracked job to find the changed ones; its cost per job is
  a set's plus that scan.
- *raw psycopg* commits each upsert in its own BEGIN/COMMIT, as psycopg does outside autocommit:
  three round trips. A jobstore write on PostgreSQL is one statement, one round trip, so it
  lands between that and *raw psycopg, autocommit* (the upsert alone, without the history
  row).
- *Writers on one SQLite file*: SQLite takes one writer at a time, so four processes share one
  write lock; the figure shows what the lock hand-over costs next to one process alone.
"""

PROFILE = """\
cProfile and strace on each hot path, then a change only where a measurement showed it pays:

- **Pool checkout and SQLAlchemy's execution machinery cost more than SQLite's work.** Each
  read and write checked a connection out of the pool (on PostgreSQL with a pre-ping round
  trip) and ran Core's parameter and result processing. Now `jobstore.db.direct` sends the
  two hot statements (read one row; upsert one row with its history event), compiled once by
  SQLAlchemy for the dialect, straight to the DBAPI cursor of a connection the store keeps:
  one thread at a time uses it, another thread takes a pooled connection instead of waiting,
  a forked child opens its own, a PostgreSQL socket that turned readable while idle is pinged
  before use (what pre-ping did), and driver errors are raised as SQLAlchemy's. Writes keep
  `BEGIN IMMEDIATE … COMMIT` on SQLite; on PostgreSQL the upsert and the history row are one
  statement (a data-modifying `WITH`), atomic on its own: one round trip instead of five.
- **Encoding** called pydantic through `TypeAdapter`'s Python wrappers and, whenever the JSON
  held a `null`, dumped the value a second time and walked it looking for NaN. It now calls
  the adapter's serializer and validator directly, and for a flat model (scalar fields only,
  no custom serializers) checks just its float fields.
- **A read the dict answers** re-registered the handed-out object with the tracker every time;
  it now returns at once when the object is already tracked as it is.
- Measured and dropped: a trigger writing the history row (no faster than the explicit insert
  once the statements skip SQLAlchemy), skipping the status-index rewrite with a separate
  conditional UPDATE (one page less per commit, no faster), a larger WAL autocheckpoint
  (within the noise).
"""

_BEFORE_AFTER_ROWS = [
    # backend, who, operation, before µs, before ratio, after µs, after ratio, reference
    ("SQLite", "JobStore dual_write", SET, "480", "12.01×", "127", "2.42×", "raw upsert"),
    ("SQLite", "JobStore dual_write", GET_MEMORY, "1.0", "7.10×", "0.7", "3.79×", "wrapper"),
    ("SQLite", "JobStore dual_write", GET_DB, "153", "8.42×", "26.9", "1.44×", "raw select"),
    ("SQLite", "JobStore dual_write", WRITE_BACK, "625", "14.43×", "215", "4.16×", "raw upsert"),
    ("SQLite", "JobStore db_only", SET, "470", "11.02×", "114", "2.19×", "raw upsert"),
    ("SQLite", "JobStore db_only", GET_DB, "154", "8.81×", "17.6", "1.20×", "raw select"),
    ("PostgreSQL", "JobStore dual_write", SET, "2,326", "3.57×", "527", "0.74×", "raw upsert"),
    ("PostgreSQL", "JobStore dual_write", GET_DB, "637", "4.95×", "157", "1.00×", "raw select"),
    ("PostgreSQL", "JobStore db_only", SET, "1,892", "2.53×", "590", "0.79×", "raw upsert"),
    ("PostgreSQL", "JobStore db_only", GET_DB, "506", "3.31×", "212", "1.22×", "raw select"),
]

BEFORE_AFTER = """\
The same cases run against the source tree before this work (`da095d9`) and after it
(`4c792f8`), alternating (before, after, before, after; three repetitions each, medians of
the two runs), with `python -m bench --only raw,diskcache,wrapper,dual_write,db_only --json F`
and ``PYTHONPATH`` pointing at each tree. Each ratio is taken against the reference measured
in the same run (*raw upsert*: the raw driver's upsert with the same encoding, BEGIN/upsert/
COMMIT on PostgreSQL; *raw select*: select by key and decode; *wrapper*: the bare
`MutableMapping` over a dict).

""" + _markdown_table(
    ["backend", "who", "operation", "before µs", "before ×", "after µs", "after ×",
     "reference"],
    [list(row) for row in _BEFORE_AFTER_ROWS]) + """

The machine was shared with other work while these ran, so the microseconds moved between
runs; the ratios, each within one run, are the figures to compare."""

METHOD = """\
Every figure comes from one run of `python -m bench` (`make bench`), which writes this page.
Each case is set up fresh (new SQLite file, or a new table on the PostgreSQL server, dropped
afterwards), timed, and torn down; the whole list runs {repeats} times, interleaved, and the
page shows the median over those repetitions. A ratio is taken within each repetition (the
contender's median over the reference's median in the same repetition) and the median of those
ratios is shown, so that a slow moment of a shared machine touches both sides of a ratio.

- The job is a 15-field dataclass ({job_bytes} bytes of JSON). jobstore and the raw-driver
  baselines encode it with the same pydantic `TypeAdapter`; diskcache, sqlitedict and shelve
  pickle it, as their users would.
- *set* writes a key that already holds a job. *get (memory hit)* reads a key this process
  wrote, so the dict answers. *get (DB)* reads, once each, keys that another store wrote, in a
  store just opened: each is a database read and a decode. *in-place change* is
  `job = jobs[k]; job.progress = x` on {wb} jobs and then `jobs.sync()`, which is what one round
  of the background loop does; the figure is per changed job (handing the jobs out is not timed).
- Operations under a microsecond are timed in batches of {fast} and each is credited the batch's
  mean (so their p99 is a p99 of batch means); the in-place case is timed per `sync()` of {wb}
  changes; everything else is timed one operation at a time.
- Stores run with `sync_interval=30`, so that a timed read is not a revalidation and the
  background loop stays out of the timings (a round's work is what the in-place case times).
- *raw sqlite3* is Python's `sqlite3` with the same pragmas (WAL, `synchronous=NORMAL`), as most
  code uses it: the upsert, then `commit()`. *raw sqlite3 + history row* does by hand what a
  jobstore write does (`BEGIN IMMEDIATE`, upsert `RETURNING` the version, the event row,
  `COMMIT`). *raw psycopg* is psycopg 3 outside autocommit (BEGIN, upsert, COMMIT); its reads
  run in autocommit (one round trip).
"""


def _targets_section(results: Sequence[Result], verify: ScaleRun | None) -> str:
    rows = []
    notes = []
    why = missed_notes(results)
    for target, value, met in target_rows(results, verify):
        verdict = {True: "met", False: "**missed**", None: "not measured"}[met]
        if met is False:
            over = value / target.limit - 1 if target.limit else math.nan
            verdict += f" by {over:.0%}"
            if target.what in why:
                notes.append(f"- *{target.what}*: {why[target.what]}")
        rows.append([target.what, _fmt_ratio(value), verdict])
    text = _markdown_table(["target", "measured", "verdict"], rows)
    if notes:
        text += "\n\nWhy the missed ones are missed:\n\n" + "\n".join(notes)
    return text


def write(docs: Path, results: Sequence[Result], concurrency: Concurrency | None,
          verify: ScaleRun | None, env: Env, *, repeats: int) -> list[Path]:
    """Write docs/benchmarks.md and docs/benchmarks.png; the paths written."""
    from .ops import WRITE_BACK_BATCH
    from .timing import FAST_BATCH

    docs.mkdir(parents=True, exist_ok=True)
    chart = docs / "benchmarks.png"
    page = docs / "benchmarks.md"
    draw_chart(chart, results)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# Benchmarks",
        "",
        "`JobStore` beside what you would use instead, measured in one run on "
        f"{_machine()}, {when}. {_versions()}.",
        "",
        "Regenerate with `make bench` (about ten minutes, most of it filling the million-row "
        "table for the verify benchmark); `make bench-smoke` checks in a few seconds that every "
        "benchmark still runs, and asserts no timing. The machine these figures come from was "
        "shared with other work, so the microseconds move from run to run; the ratios, each taken "
        "within one repetition, are the figures to read.",
        "",
        "## Targets",
        "",
        _targets_section(results, verify),
        "",
        f"![median latency per operation]({chart.name})",
        "",
    ]
    for group in ("memory", "sqlite", "postgresql"):
        rows = operation_rows(results, group)
        if rows:
            parts += [f"## {GROUP_TITLES[group]}", "", _markdown_table(HEADERS, rows), ""]
    check_rows = readback.rows(list(results))
    if check_rows:
        parts += [f"## {readback.TITLE}", "", readback.ABOUT, "",
                  _markdown_table(readback.HEADERS, check_rows), ""]
    if env.pg_reason:
        parts += [f"PostgreSQL was left out of this run: {env.pg_reason}.", ""]
    if concurrency is not None:
        parts += ["## Writers on one SQLite file", "",
                  "Each process writes its own keys; throughput is every write over the time "
                  "from a common start to the last finish. The table and the history must "
                  "hold every write afterwards.", "",
                  _markdown_table(["who", "processes", "writes", "writes/s"],
                                  _writer_rows(concurrency)), ""]
        if concurrency.error:
            parts += [f"The writers failed: {concurrency.error}", ""]
    if verify is not None:
        parts += ["## Verify at scale", "",
                  "From `bench/verify_scale.py` (its docstring says what is timed): "
                  "`JobStore.verify()` against a raw scan doing the same hash compare.", "",
                  _verify_text(verify, markdown=True), ""]
    parts += ["## Reading the tables", "", READING, ""]
    parts += ["## Method", "", METHOD.format(repeats=repeats, job_bytes=JOB_BYTES,
                                            wb=WRITE_BACK_BATCH, fast=FAST_BATCH)]
    parts += ["## What the profile showed, and what changed", "", PROFILE, "",
              _what_is_left(results), ""]
    if BEFORE_AFTER:
        parts += ["## Before and after", "", BEFORE_AFTER, ""]
    parts += ["## A fleet through a cutover", "", fleet_recorded.RECORDED]
    page.write_text("\n".join(parts))
    return [page, chart]


def _machine() -> str:
    import os

    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"


CHART_PANELS = [
    ("SQLite: set", [("sqlite", SET)]),
    ("SQLite: get from the database", [("sqlite", GET_DB)]),
    ("get answered by memory", [("memory", GET_MEMORY), ("sqlite", GET_MEMORY)]),
    ("PostgreSQL: set", [("postgresql", SET)]),
    ("PostgreSQL: get from the database", [("postgresql", GET_DB)]),
]


def draw_chart(path: Path, results: Sequence[Result]) -> None:
    """Horizontal bars of median latency on a linear scale from zero, one panel per headline
    operation, each bar labelled with its ratio to the panel's reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = _index(results)
    panels = []
    for title, sources in CHART_PANELS:
        mine = [r for r in results if r.ok and (r.case.group, r.case.op) in sources
                and not (r.case.op == GET_MEMORY and r.case.impl == "JobStore shadow")]
        if len(mine) >= 2:
            mine.sort(key=lambda r: r.median_us)
            panels.append((title, mine))
    if not panels:
        return
    heights = [0.7 + 0.3 * len(rs) for _t, rs in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, sum(heights) + 0.6),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (title, rs) in zip(axes[:, 0], panels, strict=True):
        names = [r.case.impl for r in rs]
        values = [r.median_us for r in rs]
        colors = ["#1f77b4" if n.startswith("JobStore") else "#b0b0b0" for n in names]
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        ax.set_xlim(0, max(values) * 1.45)
        ax.set_title(title, fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
        for y, r in enumerate(rs):
            ref_key = reference(r.case.group, r.case.op)
            ref = idx.get(ref_key) if ref_key else None
            label = f" {_fmt_us(r.median_us)} µs"
            if ref is not None and ref is not r:
                short = "wrapper" if ref.case.impl == "MutableMapping wrapper" else ref.case.impl
                label += f"  ({ratio(r, ref):.2f}× {short})"
            ax.text(r.median_us, y, label, va="center", fontsize=7)
    axes[-1, 0].set_xlabel("median latency, µs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_json(path: Path, results: Sequence[Result], concurrency: Concurrency | None,
               verify: ScaleRun | None) -> None:
    """Every figure of the run as one JSON document (for comparing two runs)."""
    import json
    from dataclasses import asdict

    idx = _index(results)
    cases = []
    for r in results:
        ref_key = reference(r.case.group, r.case.op)
        cases.append({
            "group": r.case.group, "impl": r.case.impl, "op": r.case.op, "error": r.error,
            "median_us": r.median_us if r.ok else None, "p99_us": r.p99_us if r.ok else None,
            "p999_us": r.p999_us if r.ok else None,
            "ops_per_s": r.ops_per_s if r.ok else None,
            "medians_us": [x.median_us for x in r.samples],
            "ratio": None if ref_key is None or ref_key == r.key else _json_float(
                ratio(r, idx.get(ref_key))),
            "against": list(ref_key) if ref_key else None,
        })
    document = {
        "cases": cases,
        "targets": [{"target": t.what, "ratio": _json_float(v), "met": m}
                    for t, v, m in target_rows(results, verify)],
        "writers": [asdict(w) for w in concurrency.runs] if concurrency else None,
        "verify": verify.figures if verify else None,
    }
    path.write_text(json.dumps(document, indent=1))


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)
