"""JSONL trace: one line per event, the ground truth for every latency figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from bargein.runtime.events import Event


def event_line(event: Event) -> str:
    return json.dumps(event.to_json(), separators=(",", ":"), sort_keys=True) + "\n"


class TraceWriter:
    """A sync bus listener: buffered writes are microseconds, cheaper than a task and a queue."""

    def __init__(self, path: str | Path) -> None:
        self._file: IO[str] = open(path, "w", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        self._file.write(event_line(event))

    def close(self) -> None:
        self._file.close()
