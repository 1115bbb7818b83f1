"""Open a store in a fresh process and print the order it lists the jobs in.

usage: list_order.py URL TABLE STAGE

Prints one JSON line: ``keys`` (iteration), ``values`` (each value's ``"k"`` member, as
`tests/test_order.py` writes them) and ``items`` (the keys of ``items()``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import _path  # noqa: F401 - puts tests/ on sys.path

from jobstore import JobStore


def main() -> None:
    url, table, stage = sys.argv[1:]
    jobs: JobStore[Any] = JobStore(url, table=table, stage=stage)
    with jobs:
        print(json.dumps({
            "keys": list(jobs),
            "values": [value["k"] for value in jobs.values()],
            "items": [key for key, _value in jobs.items()],
        }), flush=True)


if __name__ == "__main__":
    main()
