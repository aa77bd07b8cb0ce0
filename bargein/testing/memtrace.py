"""Run a module under tracemalloc, writing a snapshot every few seconds: for finding what grows
in a long-running server process (``serve_in_process`` uses it when ``$BARGEIN_MEMTRACE`` names
a directory; see docs/capacity.md).

    python -m bargein.testing.memtrace DIR SECONDS FRAMES DELAY -m module args...

Tracing starts DELAY seconds after the start (what start-up allocates is not growth).

Snapshots go to ``DIR/<pid>/snapshot-<n>.pickle`` (``tracemalloc.Snapshot.load``); compare two with
``python -m bargein.testing.memtrace --diff A B``, which prints the biggest growth grouped by
traceback. Tracing makes every allocation slower (≈ 2-4x the CPU): figures from a traced run
are for naming allocation sites, not for capacity.
"""

from __future__ import annotations

import gc
import os
import runpy
import sys
import threading
import tracemalloc
from pathlib import Path

__all__ = ["diff", "main"]

# Allocations of the tracer itself and of the import machinery are not the server's.
_IGNORED = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
)


def _snapshots(directory: Path, every_s: float, frames: int, delay_s: float) -> None:
    stop = threading.Event()
    stop.wait(delay_s)  # past the start-up: only what is allocated later is traced
    tracemalloc.start(frames)
    n = 0
    while not stop.wait(every_s):
        gc.collect()  # garbage not yet collected is not retained
        snapshot = tracemalloc.take_snapshot().filter_traces(_IGNORED)
        tmp = directory / f".snapshot-{n}.tmp"
        snapshot.dump(str(tmp))
        tmp.rename(directory / f"snapshot-{n}.pickle")  # readers never see half a file
        n += 1


def diff(before: str, after: str, top: int = 15, key: str = "traceback") -> str:
    """The `top` allocation sites that grew most from `before` to `after` (snapshot files)."""
    a = tracemalloc.Snapshot.load(before)
    b = tracemalloc.Snapshot.load(after)
    lines = []
    total = sum(s.size_diff for s in b.compare_to(a, "filename"))
    lines.append(f"total growth {total / 2**20:.2f} MiB")
    for stat in b.compare_to(a, key)[:top]:
        lines.append(
            f"{stat.size_diff / 2**20:+.3f} MiB ({stat.count_diff:+d} blocks; "
            f"now {stat.size / 2**20:.3f} MiB in {stat.count} blocks)"
        )
        lines.extend(f"    {line}" for line in stat.traceback.format()[-12:])
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--diff"]:
        key = argv[4] if len(argv) > 4 else "traceback"
        print(diff(argv[1], argv[2], int(argv[3]) if len(argv) > 3 else 15, key))
        return 0
    directory, every_s = Path(argv[0]), float(argv[1])
    frames, delay_s = int(argv[2]), float(argv[3])
    rest = argv[4:]
    if rest[:1] != ["-m"] or len(rest) < 2:
        print("usage: memtrace DIR SECONDS FRAMES DELAY -m module args...", file=sys.stderr)
        return 2
    directory = directory / str(os.getpid())  # several servers may trace into one DIR
    directory.mkdir(parents=True, exist_ok=True)
    threading.Thread(
        target=_snapshots, args=(directory, every_s, frames, delay_s), daemon=True
    ).start()
    sys.argv = [rest[1], *rest[2:]]
    runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
