"""The soak's allocation tracer: the switch that wraps a served process, and the snapshot diff."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import pytest

from bargein.testing import memtrace, server_process


def test_the_switch_wraps_the_server_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BARGEIN_MEMTRACE", raising=False)
    tail = ["--host", "127.0.0.1", "--port", "0"]
    assert server_process._command(["demo"]) == [sys.executable, "-m", "bargein.cli", "demo", *tail]
    monkeypatch.setenv("BARGEIN_MEMTRACE", "/tmp/t:5")
    assert server_process._command(["-m", "mod", "--x"]) == [
        sys.executable, "-m", "bargein.testing.memtrace", "/tmp/t", "5", "8", "60",
        "-m", "mod", "--x", *tail,
    ]  # fmt: skip


def test_diff_names_the_site_that_grew(tmp_path: Path) -> None:
    kept: list[bytes] = []
    tracemalloc.start(4)
    try:
        before = tracemalloc.take_snapshot()
        kept.extend(bytes(1000) for _ in range(200))  # ~200 kB retained here
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    before.dump(str(tmp_path / "a")), after.dump(str(tmp_path / "b"))
    report = memtrace.diff(str(tmp_path / "a"), str(tmp_path / "b"), top=3)
    first = report.splitlines()[1]
    assert first.startswith("+0.19") and "+200 blocks" in first, report
    assert "test_memtrace.py" in report and len(kept) == 200


def test_usage_error_without_a_module() -> None:
    assert memtrace.main(["/tmp/x", "30", "8", "60", "not-a-module"]) == 2
