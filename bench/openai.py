"""OpenAI-compatible plumbing benchmark; the same as `bargein bench openai` (--json for JSON)."""

from __future__ import annotations

import sys
from pathlib import Path

# Runnable from a checkout without installing: `python bench/openai.py --json`. The script's own
# directory is replaced, not kept: on sys.path this file would shadow the `openai` package.
_here = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
sys.path.insert(0, str(_here.parent))

from bargein.benchmarks.openai import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
