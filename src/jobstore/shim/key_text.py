"""Reports and dumps name keys as text, the way the database and the CLI name them.

A store keyed by ``int`` or `uuid.UUID` holds those keys in its dict; a verify report (read back
by ``jobstore verify`` from the control plane) and a memory dump (compared by ``jobstore verify
--snapshot`` with the rows) must name each job by the text of its row.
"""

from __future__ import annotations

import dataclasses

from ..snapshot import MemoryDump
from ..verify import VerifyReport
from .keytypes import text_key


def text_report(report: VerifyReport) -> VerifyReport:
    """``report`` with every drift's key as text."""
    if all(type(drift.key) is str for drift in report.drifts):
        return report
    drifts = tuple(dataclasses.replace(d, key=text_key(d.key)) for d in report.drifts)
    return dataclasses.replace(report, drifts=drifts)


def text_dump(dump: MemoryDump) -> MemoryDump:
    """``dump`` with its jobs and its unencodable keys named as text."""
    return dataclasses.replace(
        dump, jobs={text_key(key): doc for key, doc in dump.jobs.items()},
        unencodable=tuple(text_key(key) for key in dump.unencodable))
