"""Thin script entry for the DSP benchmark: ``python bench/dsp.py [--json]``."""

from __future__ import annotations

import sys
from pathlib import Path

# Runnable from a checkout without an installed package: put the repo root first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bargein.benchmarks.dsp import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
