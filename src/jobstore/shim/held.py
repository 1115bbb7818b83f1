"""Answering "which jobs do you hold?" (`jobstore.held_keys`): the keys of the dict and of the
queued writes, read from this process's memory alone, never from the database."""

from __future__ import annotations

import logging
from typing import Any

from ..held_keys import HeldKeys
from ..logs import AUDIT, emit
from .keytypes import text_key
from .parts import Parts


def held_keys(parts: Parts[Any]) -> HeldKeys:
    """What this process would still serve if the database were not read: the jobs its dict
    holds, and those it keeps as queued writes (they reach the database, and its dict, later)."""
    keys = {text_key(key) for key in list(parts.tier.memory)}
    keys.update(text_key(key) for key, _write in parts.queue.snapshot())
    return HeldKeys(parts.instance_id, parts.stage.value, frozenset(keys))


def answer_held_keys(parts: Parts[Any], request_id: int) -> None:
    """Answer the newest request that asks which keys this process holds (the answer, made
    after the requests before it, answers them too)."""
    answer = held_keys(parts)
    parts.control.submit_report(request_id, parts.instance_id, answer.to_dict())
    emit(AUDIT, logging.INFO, "audit.held_keys_answered",
         "table %(table)r: answered request %(request_id)d: this process holds "
         "%(held)d job(s)", table=parts.table, request_id=request_id,
         held=len(answer.keys), instance_id=parts.instance_id)
