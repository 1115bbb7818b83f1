"""Files a person or another tool reads back: written atomically, readable by the owner only."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any


def write_json_atomic(path: str | os.PathLike[str], document: Any) -> None:
    """Write ``document`` as JSON to ``path`` (mode 0600) so a reader sees all of it or none;
    on any failure the temporary file is removed and ``path`` is left as it was."""
    temporary = f"{os.fspath(path)}.tmp{os.getpid()}"
    fd = os.open(temporary, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(document, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
