"""List a store keyed by int or UUID from a fresh process: each key's type, text and value.

usage: read_keyed.py URL TABLE STAGE int|uuid

Prints one JSON object: ``items`` as [type name, str(key), value] in iteration order, and what
``get``, ``in`` and ``[]`` answer for a key of the wrong type (the text of the first key).
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import _path  # noqa: F401 - puts tests/ on sys.path

from jobstore import JobStore

KEY_TYPES: dict[str, type[Any]] = {"int": int, "uuid": uuid.UUID}


def main() -> None:
    url, table, stage, key_type = sys.argv[1:]
    store: JobStore[Any, Any] = JobStore(url, table=table, stage=stage,
                                         key_type=KEY_TYPES[key_type])
    with store:
        items = [[type(key).__name__, str(key), value] for key, value in store.items()]
        wrong = items[0][1] if items else "none"
        try:
            store[wrong]
            indexed = "found"
        except KeyError:
            indexed = "KeyError"
        print(json.dumps({"items": items, "get_wrong": store.get(wrong),
                          "in_wrong": wrong in store, "index_wrong": indexed}), flush=True)


if __name__ == "__main__":
    main()
