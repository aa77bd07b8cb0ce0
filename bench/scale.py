"""Workers sharing Redis under load; the same as `bargein bench scale` (--json for JSON)."""

from __future__ import annotations

import sys
from pathlib import Path

# Runnable from a checkout without installing: `python bench/scale.py --json`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bargein.benchmarks.scale import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
