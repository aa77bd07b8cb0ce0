"""A command whose reader goes away (`bargein research list | head -1`) stops quietly with
status 1, like any output that cannot be written (docs/run.md), not with a traceback."""

from __future__ import annotations

import subprocess
import sys


def test_a_closed_stdout_is_no_traceback() -> None:
    # Our end of the pipe is closed before the command writes: every write gets EPIPE.
    proc = subprocess.Popen(
        [sys.executable, "-m", "bargein.cli", "research", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
