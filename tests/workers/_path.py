"""Put ``tests/`` on ``sys.path`` so a worker imports ``workers.models`` as the tests do."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS_DIR = str(Path(__file__).resolve().parent.parent)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)
