"""The exit codes of the ``jobstore`` command, named once: every result's ``exit_code`` is one
of them, and the CLI exits with it."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a command's exit status says. ``DRIFT``, ``REFUSED``, ``NOT_FOUND`` and
    ``UNDECODABLE`` are one code, 1: the command ran and its answer is no, named for what each
    command means by it."""

    OK = 0
    """Done; consistent; found."""
    DRIFT = 1
    """verify found a drift."""
    REFUSED = 1
    """A change was refused or cancelled."""
    NOT_FOUND = 1
    """show or history: no such key."""
    UNDECODABLE = 1
    """show: the row cannot be decoded; export: rows that cannot be decoded were left out
    (each named)."""
    ERROR = 2
    """Usage, configuration or connection error: one line on stderr, no traceback."""
    TIMEOUT = 3
    """A live instance did not answer, or did not switch, in time."""
    INTERRUPTED = 130
    """Ctrl-C (128 + SIGINT, as a shell reports it)."""
