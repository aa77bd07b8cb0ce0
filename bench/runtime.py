"""Runtime benchmark; same as `bargein bench runtime`."""

import sys

from bargein.benchmarks.runtime import main

sys.exit(main(sys.argv[1:]))
