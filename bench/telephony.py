"""Telephony benchmark; the same as `bargein bench telephony` (pass --json for JSON)."""

from __future__ import annotations

import sys
from pathlib import Path

# Runnable from a checkout without installing: `python bench/telephony.py --json`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bargein.benchmarks.telephony import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
