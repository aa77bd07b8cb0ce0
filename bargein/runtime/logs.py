"""Structured failure logs: one line of JSON per failure, with where it happened.

A line holds the session, the source (actor or engine stage), the turn, the exception type, its
message (cut to 300 characters) and the traceback as compact ``file:line function`` frames. It
never holds audio, reply text beyond that message, or credentials."""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path

log = logging.getLogger("bargein.session")

_MESSAGE_CHARS = 300


def failure_line(
    session: str, source: str, exc: BaseException, *, fatal: bool, turn: int | None = None
) -> str:
    frames = [
        f"{Path(f.filename).name}:{f.lineno} {f.name}"
        for f in traceback.extract_tb(exc.__traceback__)
    ]
    record = {
        "event": "actor_failed" if fatal else "engine_failed",
        "session": session,
        "source": source,
        "turn": turn,
        "fatal": fatal,
        "error": type(exc).__name__,
        "message": str(exc)[:_MESSAGE_CHARS],
        "traceback": frames,
    }
    return json.dumps(record, separators=(",", ":"))


def log_failure(
    session: str, source: str, exc: BaseException, *, fatal: bool, turn: int | None = None
) -> None:
    """Log a caught failure: ERROR when it ends the session, WARNING when it ends less."""
    level = logging.ERROR if fatal else logging.WARNING
    if log.isEnabledFor(level):
        log.log(level, "%s", failure_line(session, source, exc, fatal=fatal, turn=turn))
