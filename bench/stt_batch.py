"""The STT batch's cost with the real recognizers; the same as
`python -m bargein.benchmarks.stt_batch` (pass --json for JSON)."""

from __future__ import annotations

import sys
from pathlib import Path

# Runnable from a checkout without installing: `python bench/stt_batch.py --json`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bargein.benchmarks.stt_batch import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
