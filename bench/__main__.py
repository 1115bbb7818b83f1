"""``python -m bench``: the full run, writing docs/benchmarks.md and docs/benchmarks.png;
``python -m bench --smoke``: every benchmark a few times, to show that each one works."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import ops, peers, readback, report, scale, writers
from .env import Env
from .runner import run_cases

FULL = {"n_fast": 20000, "n_db": 2000, "n_pg": 500, "repeats": 5}
SMOKE = {"n_fast": 100, "n_db": 20, "n_pg": 10, "repeats": 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true",
                        help="run each benchmark briefly; write no report; assert no timing")
    parser.add_argument("--repeats", type=int, help="repetitions (default 5; smoke 1)")
    parser.add_argument("--no-pg", action="store_true", help="leave PostgreSQL out")
    parser.add_argument("--only", help="run only cases whose group, impl or op contains one of "
                                       "these comma-separated words")
    parser.add_argument("--verify-rows", type=int, default=None,
                        help="rows for the verify-at-scale benchmark (default 1,000,000; 0: "
                             "leave it out)")
    parser.add_argument("--no-writers", action="store_true",
                        help="leave out the writer processes")
    parser.add_argument("--docs", help="where to write the report (default: docs/, and only "
                                       "after a full run; given, also after a partial one)")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args(argv)

    sizes = dict(SMOKE if args.smoke else FULL)
    if args.repeats:
        sizes["repeats"] = args.repeats
    started = time.monotonic()
    env = Env(use_pg=not args.no_pg)
    failed = False
    try:
        if env.pg_reason:
            print(f"PostgreSQL left out: {env.pg_reason}", file=sys.stderr)
        n = {k: sizes[k] for k in ("n_fast", "n_db", "n_pg")}
        cases = peers.cases(env, **n) + ops.cases(env, **n) + readback.cases(env, **n)
        if args.only:
            words = [w for w in args.only.split(",") if w]
            cases = [c for c in cases if any(w in f"{c.group} {c.impl} {c.op}" for w in words)]
        print(f"{len(cases)} cases × {sizes['repeats']} repetitions", file=sys.stderr)
        results = run_cases(cases, sizes["repeats"])
        failed |= any(not r.ok for r in results)
        partial = bool(args.only or args.no_writers or args.verify_rows == 0)
        concurrency = (None if args.only or args.no_writers
                       else writers.run(env, smoke=args.smoke))
        failed |= bool(concurrency and concurrency.error)
        verify = (None if args.only or args.verify_rows == 0
                  else scale.run(smoke=args.smoke, rows=args.verify_rows, pg=env.has_pg))
        failed |= bool(verify and verify.error)
        text = report.console(results, concurrency, verify, env)
        print(text)
        if args.json:
            report.write_json(Path(args.json), results, concurrency, verify)
        if not args.smoke and (args.docs or not partial):
            written = report.write(Path(args.docs or "docs"), results, concurrency, verify, env,
                                   repeats=sizes["repeats"])
            print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    finally:
        env.close()
    print(f"done in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
