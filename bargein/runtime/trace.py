"""JSONL trace: one line per event, the ground truth for every latency figure."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import IO

import trio

from bargein.runtime.events import Event


def event_line(event: Event) -> str:
    return json.dumps(event.to_json(), separators=(",", ":"), sort_keys=True) + "\n"


class TraceWriter:
    """A bus listener that never touches the disk on the event loop.

    Each event becomes a line in memory inline (no I/O, no await); the `run` task hands the
    pending lines to a worker thread in one write per wake-up, so a slow disk delays the trace,
    never the session. `aclose` writes what is left and closes the file (in a thread too)."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._lines: list[str] = []
        self._wakeup = trio.Event()
        self._lock = trio.Lock()
        self._file: IO[str] | None = None
        self.writes = 0  # thread hand-offs so far (each carries every line pending then)

    def __call__(self, event: Event) -> None:
        self._lines.append(event_line(event))
        self._wakeup.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        opener = partial(open, self._path, "w", encoding="utf-8")
        self._file = await trio.to_thread.run_sync(opener)
        task_status.started()
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            await self._write_pending()

    async def _write_pending(self) -> None:
        async with self._lock:
            if self._file is None or not self._lines:
                return
            text = "".join(self._lines)
            self._lines.clear()
            self.writes += 1
            # Shielded: a batch taken from memory is always written (a cancel would otherwise
            # strike before the thread starts; once started, a thread is never abandoned).
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._file.write, text)

    async def aclose(self) -> None:
        """Write every line still pending, then close. The caller bounds and shields it."""
        await self._write_pending()
        if self._file is not None:
            file, self._file = self._file, None
            await trio.to_thread.run_sync(file.close)
